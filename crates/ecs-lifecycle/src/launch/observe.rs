//! One poll of a launch verification: the instance in its group and in EC2,
//! its container instance, and where the diagnosis stands. A warm-pool launch
//! is not looked at (it will not join ECS now); an instance that is not running
//! is not looked for in ECS. Each look of an invocation that holds the action
//! also keeps its claim on the instance's tag ([`crate::launch::claim`]).

use tracing::{Span, info, warn};

use crate::error::Error;
use crate::hook::Job;
use crate::hook::lookup::find_container_instance;
use crate::hook::pacing::random_u64;
use crate::launch::claim::{self, ChainTag, ClaimStep, LAUNCH_CHAIN_TAG, Me};
use crate::launch::decide::{Diagnosis, Observed};
use crate::launch::diagnosis::Findings;
use crate::launch::run::{LaunchMemo, Verifier};
use crate::model::InstanceId;
use crate::ports::{AutoScaling, Ec2, Ecs, Publisher, Ssm};

impl<E: Ecs, A: AutoScaling, C: Ec2, S: Ssm, P: Publisher> Verifier<E, A, C, S, P> {
    pub(super) async fn look(
        &self,
        job: &mut Job<LaunchMemo>,
        warm_pool: bool,
    ) -> Result<Observed, Error> {
        let mut o = Observed {
            warm_pool,
            asg_instance: None,
            ec2_state: None,
            container_instance: None,
            diagnosis: Diagnosis::NotStarted,
            superseded_by: None,
        };
        if warm_pool {
            // It will not join ECS now: no ECS (or any) calls.
            return Ok(o);
        }
        let id = &job.action.instance_id;
        // EC2 first: a duplicate stops on the claim even while Auto Scaling
        // fails its reads.
        let status = self.ec2.instance_state(id).await?;
        o.ec2_state = status.as_ref().map(|s| s.state.clone());
        // Held actions only, on an instance there is still something to check on.
        if let (Some(hook), Some(status)) = (job.action.hook.as_deref(), &status)
            && (status.state.is_running() || status.state.is_pending())
        {
            o.superseded_by = self
                .claim(
                    &mut job.memo,
                    id,
                    hook,
                    job.attempt,
                    status.launch_chain.as_deref(),
                )
                .await;
            if o.superseded_by.is_some() {
                return Ok(o);
            }
        }
        o.asg_instance = self.hold.autoscaling.instance(id).await?;
        let memo = &job.memo;
        if !o.ec2_state.as_ref().is_some_and(|s| s.is_running()) {
            return Ok(o);
        }
        o.container_instance =
            find_container_instance(&self.ecs, &self.config.common.clusters, id).await?;
        if let Some(ci) = &o.container_instance {
            Span::current()
                .record("cluster", ci.cluster.as_str())
                .record("container_instance", ci.arn.as_str());
        }
        o.diagnosis = match (
            &memo.ssm_unreachable,
            &memo.command_id,
            memo.command_sent_at_ms,
        ) {
            (Some(reason), _, _) => Diagnosis::Finished(Findings::ssm_unreachable(reason)),
            (None, Some(command_id), Some(sent_at_ms)) => {
                match self.ssm.command_invocation(command_id, id).await? {
                    Some(inv) if inv.is_finished() => {
                        Diagnosis::Finished(Findings::from_invocation(&inv))
                    }
                    _ => Diagnosis::Running {
                        command_id: command_id.clone(),
                        sent_at_ms,
                    },
                }
            }
            _ => Diagnosis::NotStarted,
        };
        Ok(o)
    }

    /// Keeps this invocation's claim on the action (see [`claim::decide`]):
    /// returns who carries the action instead, if another invocation does. A
    /// write EC2 refuses never gates the check: it goes on unclaimed, logged.
    async fn claim(
        &self,
        memo: &mut LaunchMemo,
        id: &InstanceId,
        hook: &str,
        hop: u32,
        tag_value: Option<&str>,
    ) -> Option<String> {
        let scratch = &mut memo.claim;
        let parent = scratch
            .parent
            .get_or_insert_with(|| memo.chain.claimed.clone())
            .clone();
        let token = scratch
            .token
            .get_or_insert_with(|| format!("{:016x}", random_u64()))
            .clone();
        let tag = tag_value.and_then(ChainTag::parse);
        if !scratch.claimed && tag.as_ref().is_some_and(|t| t.token == token) {
            // A write whose answer was lost went through after all.
            scratch.claimed = true;
            memo.chain.claimed(&token, None);
        }
        let step = claim::decide(
            tag.as_ref(),
            &Me {
                hook,
                hop,
                token: &token,
                parent: parent.as_deref(),
                chain: &memo.chain,
                claimed_now: scratch.claimed,
            },
        );
        match step {
            ClaimStep::Keep => None,
            // Refused for good: the check goes on unclaimed.
            ClaimStep::Claim if scratch.refused => None,
            ClaimStep::Stop { by } => {
                info!(superseded_by = %by, hop, "another invocation carries this launch action (a duplicate or late delivery): this one stops");
                Some(by)
            }
            ClaimStep::Claim => {
                let mine = ChainTag {
                    hop,
                    token: token.clone(),
                    parent,
                    hook: hook.to_owned(),
                };
                let Some(value) = mine.value() else {
                    warn!(
                        hook,
                        "the hook name is too long for the launch-chain tag's value: the check goes on unclaimed (a duplicate chain is then not told to stop)"
                    );
                    scratch.refused = true;
                    return None;
                };
                match self.ec2.tag_instance(id, LAUNCH_CHAIN_TAG, &value).await {
                    Ok(()) => {
                        scratch.claimed = true;
                        let before = tag.map(|t| t.token);
                        memo.chain.claimed(&token, before.as_deref());
                    }
                    Err(e) if e.is_retryable() => {
                        // Its answer may be lost with the write done: a later
                        // read of this token is this chain's, not a newer one.
                        memo.chain.tried(&token, tag.map(|t| t.token).as_deref());
                        warn!(error = %e, "could not write the launch-chain tag yet; the check goes on and the claim is tried again at the next look");
                    }
                    Err(e) => {
                        warn!(error = %e, "EC2 refused the launch-chain tag; the check goes on unclaimed (a duplicate chain is then not told to stop)");
                        scratch.refused = true;
                    }
                }
                None
            }
        }
    }
}
