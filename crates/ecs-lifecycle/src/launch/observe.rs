//! One poll of a launch verification: the instance in its group and in EC2,
//! its container instance, and where the diagnosis stands. A warm-pool launch
//! is not looked at (it will not join ECS now); an instance that is not running
//! is not looked for in ECS.

use tracing::Span;

use crate::error::Error;
use crate::hook::lookup::find_container_instance;
use crate::launch::decide::{Diagnosis, Observed};
use crate::launch::diagnosis::Findings;
use crate::launch::run::{LaunchMemo, Verifier};
use crate::model::LifecycleAction;
use crate::ports::{AutoScaling, Ec2, Ecs, Publisher, Ssm};

impl<E: Ecs, A: AutoScaling, C: Ec2, S: Ssm, P: Publisher> Verifier<E, A, C, S, P> {
    pub(super) async fn look(
        &self,
        memo: &LaunchMemo,
        action: &LifecycleAction,
        warm_pool: bool,
    ) -> Result<Observed, Error> {
        let mut o = Observed {
            warm_pool,
            asg_instance: None,
            ec2_state: None,
            container_instance: None,
            diagnosis: Diagnosis::NotStarted,
        };
        if warm_pool {
            // It will not join ECS now: no ECS (or any) calls.
            return Ok(o);
        }
        let id = &action.instance_id;
        o.asg_instance = self.hold.autoscaling.instance(id).await?;
        o.ec2_state = self.ec2.instance_state(id).await?;
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
}
