use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::types::{
    AlarmSpecification, AutoScalingGroup, DesiredConfiguration, LaunchTemplateSpecification,
    RefreshPreferences as SdkPreferences, RefreshStrategy, Tag,
};

use super::{aws_error, epoch_ms};
use crate::error::AwsError;
use crate::model::{
    ActionAck, ActionResult, AsgGroup, AsgInstance, HookTimeouts, InstanceId, LaunchTemplateRef,
    LifecycleAction, LifecycleHook, LifecycleState, Refresh, RefreshPreferences, RefreshStatus,
    ScalingActivity, Transition,
};
use crate::ports::AutoScaling;

/// Auto Scaling limits (see the API reference).
const DESCRIBE_INSTANCES_MAX: usize = 50;
const INSTANCES_PAGE: i32 = 50;
/// DescribeAutoScalingGroups takes up to MaxRecords names (50 by default).
const DESCRIBE_GROUPS_MAX: usize = 100;
const GROUPS_PAGE: i32 = 100;
const ACTIVITIES_PAGE: i32 = 100;
/// At most this many pages of activities (10 000), however busy the group.
const ACTIVITIES_MAX_PAGES: usize = 100;
/// The refreshes the AMI rollout looks at (the last few) and the ones the
/// newest is picked from (Auto Scaling keeps about six weeks).
const REFRESHES_FEW: i32 = 10;
const REFRESHES_PAGE: i32 = 100;
/// The activities `refused_launches` looks at.
const RECENT_ACTIVITIES: i32 = 50;

/// Auto Scaling's answer once an action is completed or expired. Final.
fn no_active_action(err: &AwsError) -> bool {
    err.code.as_deref() == Some("ValidationError")
        && err.message.contains("No active Lifecycle Action")
}

fn ack(result: Result<(), AwsError>) -> Result<ActionAck, AwsError> {
    match result {
        Ok(()) => Ok(ActionAck::Accepted),
        Err(e) if no_active_action(&e) => Ok(ActionAck::NoActiveAction(e.message)),
        Err(e) => Err(e),
    }
}

fn asg_instance(d: &aws_sdk_autoscaling::types::AutoScalingInstanceDetails) -> Option<AsgInstance> {
    Some(AsgInstance {
        instance_id: d.instance_id()?.into(),
        asg: d.auto_scaling_group_name()?.to_owned(),
        lifecycle_state: LifecycleState::parse(d.lifecycle_state()?),
    })
}

fn lifecycle_hook(h: &aws_sdk_autoscaling::types::LifecycleHook) -> Option<LifecycleHook> {
    let heartbeat = h
        .heartbeat_timeout()
        .map_or(HookTimeouts::DEFAULT.heartbeat_timeout_s, |s| {
            u64::try_from(s).unwrap_or(0)
        });
    let mut timeouts = HookTimeouts::from_heartbeat(heartbeat);
    if let Some(global) = h.global_timeout().and_then(|g| u64::try_from(g).ok()) {
        timeouts.global_timeout_s = global;
    }
    let transition = [Transition::Launching, Transition::Terminating]
        .into_iter()
        .find(|t| h.lifecycle_transition() == Some(t.as_str()));
    Some(LifecycleHook {
        name: h.lifecycle_hook_name()?.to_owned(),
        transition,
        timeouts,
        default_result: h.default_result().unwrap_or("ABANDON").to_owned(),
        notification_target: h.notification_target_arn().map(str::to_owned),
    })
}

fn template_ref(spec: &LaunchTemplateSpecification) -> Option<LaunchTemplateRef> {
    let id = spec.launch_template_id().map(str::to_owned);
    let name = spec.launch_template_name().map(str::to_owned);
    if id.is_none() && name.is_none() {
        return None;
    }
    Some(LaunchTemplateRef {
        id,
        name,
        // AWS's default when a specification names no version.
        version: spec.version().unwrap_or("$Default").to_owned(),
    })
}

/// The launch template of a mixed instances policy.
fn mixed_template(
    policy: Option<&aws_sdk_autoscaling::types::MixedInstancesPolicy>,
) -> Option<LaunchTemplateRef> {
    policy
        .and_then(|p| p.launch_template())
        .and_then(|t| t.launch_template_specification())
        .and_then(template_ref)
}

fn asg_group(g: &AutoScalingGroup) -> Option<AsgGroup> {
    let direct = g.launch_template().and_then(template_ref);
    let mixed_instances_policy = direct.is_none() && g.mixed_instances_policy().is_some();
    Some(AsgGroup {
        name: g.auto_scaling_group_name()?.to_owned(),
        desired_capacity: g.desired_capacity().unwrap_or(0),
        launch_template: direct.or_else(|| mixed_template(g.mixed_instances_policy())),
        mixed_instances_policy,
        instances: g
            .instances()
            .iter()
            .filter_map(|i| {
                Some((
                    i.instance_id()?.into(),
                    LifecycleState::parse(i.lifecycle_state()?.as_str()),
                ))
            })
            .collect(),
        tags: g
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect(),
        // arn:<partition>:autoscaling:<region>:<account>:autoScalingGroup:...
        account_id: g
            .auto_scaling_group_arn()
            .and_then(|arn| arn.split(':').nth(4))
            .filter(|a| !a.is_empty())
            .map(str::to_owned),
        unhealthy: g
            .instances()
            .iter()
            .filter(|i| {
                i.health_status()
                    .is_some_and(|h| h.eq_ignore_ascii_case("Unhealthy"))
            })
            .filter_map(|i| i.instance_id().map(InstanceId::from))
            .collect(),
        terminate_hook_abandon: g
            .instance_lifecycle_policy()
            .and_then(|p| p.retention_triggers())
            .and_then(|t| t.terminate_hook_abandon())
            .map(|a| a.as_str().to_owned()),
    })
}

fn refresh(r: &aws_sdk_autoscaling::types::InstanceRefresh) -> Option<Refresh> {
    let desired = r.desired_configuration();
    let direct = desired.and_then(|d| d.launch_template());
    Some(Refresh {
        id: r.instance_refresh_id()?.to_owned(),
        status: RefreshStatus::parse(r.status()?.as_str()),
        status_reason: r.status_reason().map(str::to_owned),
        started_ms: epoch_ms(r.start_time()),
        ended_ms: epoch_ms(r.end_time()),
        percentage: r.percentage_complete(),
        instances_to_update: r.instances_to_update(),
        desired_template: direct
            .and_then(template_ref)
            .or_else(|| mixed_template(desired.and_then(|d| d.mixed_instances_policy()))),
        desired_version: direct
            .and_then(|t| t.version())
            .and_then(|v| v.parse().ok()),
        ours: None,
        rollback_reason: r
            .rollback_details()
            .and_then(|d| d.rollback_reason())
            .map(str::to_owned),
    })
}

fn scaling_activity(a: &aws_sdk_autoscaling::types::Activity) -> Option<ScalingActivity> {
    Some(ScalingActivity {
        id: a.activity_id()?.to_owned(),
        description: a.description()?.to_owned(),
        status_code: a.status_code()?.as_str().to_owned(),
        status_message: a.status_message().map(str::to_owned),
        started_ms: epoch_ms(a.start_time()),
    })
}

/// DescribeAutoScalingGroups, all pages: of these names, or of every group.
async fn describe_groups(
    client: &Client,
    names: Option<Vec<String>>,
) -> Result<Vec<AsgGroup>, AwsError> {
    let groups: Vec<AutoScalingGroup> = client
        .describe_auto_scaling_groups()
        .set_auto_scaling_group_names(names)
        .max_records(GROUPS_PAGE)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| aws_error("autoscaling", "DescribeAutoScalingGroups", &e))?;
    Ok(groups.iter().filter_map(asg_group).collect())
}

/// DescribeLifecycleHooks: the group's hooks, or only the one named.
async fn describe_hooks(
    client: &Client,
    group: &str,
    hook: Option<&str>,
) -> Result<Vec<LifecycleHook>, AwsError> {
    let resp = client
        .describe_lifecycle_hooks()
        .auto_scaling_group_name(group)
        .set_lifecycle_hook_names(hook.map(|h| vec![h.to_owned()]))
        .send()
        .await
        .map_err(|e| aws_error("autoscaling", "DescribeLifecycleHooks", &e))?;
    Ok(resp
        .lifecycle_hooks()
        .iter()
        .filter_map(lifecycle_hook)
        .collect())
}

/// DescribeInstanceRefreshes: one page of the group's last `max`, in the
/// order the service gave them.
async fn describe_refreshes(
    client: &Client,
    group: &str,
    max: i32,
) -> Result<Vec<Refresh>, AwsError> {
    let resp = client
        .describe_instance_refreshes()
        .auto_scaling_group_name(group)
        .max_records(max)
        .send()
        .await
        .map_err(|e| aws_error("autoscaling", "DescribeInstanceRefreshes", &e))?;
    Ok(resp
        .instance_refreshes()
        .iter()
        .filter_map(refresh)
        .collect())
}

impl AutoScaling for Client {
    async fn instance(&self, instance_id: &InstanceId) -> Result<Option<AsgInstance>, AwsError> {
        let found = self.instances(std::slice::from_ref(instance_id)).await?;
        Ok(found.into_iter().find(|i| i.instance_id == instance_id))
    }

    async fn instances(&self, instance_ids: &[InstanceId]) -> Result<Vec<AsgInstance>, AwsError> {
        let mut out = Vec::with_capacity(instance_ids.len());
        for chunk in instance_ids.chunks(DESCRIBE_INSTANCES_MAX) {
            let details: Vec<_> = self
                .describe_auto_scaling_instances()
                .set_instance_ids(Some(chunk.iter().map(String::from).collect()))
                .max_records(INSTANCES_PAGE)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| aws_error("autoscaling", "DescribeAutoScalingInstances", &e))?;
            out.extend(details.iter().filter_map(asg_instance));
        }
        Ok(out)
    }

    async fn hook_timeouts(&self, asg: &str, hook: &str) -> Result<Option<HookTimeouts>, AwsError> {
        let hooks = describe_hooks(self, asg, Some(hook)).await?;
        Ok(hooks
            .into_iter()
            .find(|h| h.name == hook)
            .map(|h| h.timeouts))
    }

    async fn lifecycle_hooks(&self, group: &str) -> Result<Vec<LifecycleHook>, AwsError> {
        describe_hooks(self, group, None).await
    }

    async fn heartbeat(&self, action: &LifecycleAction) -> Result<ActionAck, AwsError> {
        let mut req = self
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&action.asg)
            .set_lifecycle_hook_name(action.hook.clone());
        req = match &action.token {
            Some(token) => req.lifecycle_action_token(token),
            None => req.instance_id(action.instance_id.as_str()),
        };
        ack(req
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("autoscaling", "RecordLifecycleActionHeartbeat", &e)))
    }

    async fn terminate_instance(&self, instance_id: &InstanceId) -> Result<(), AwsError> {
        self.terminate_instance_in_auto_scaling_group()
            .instance_id(instance_id.as_str())
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("autoscaling", "TerminateInstanceInAutoScalingGroup", &e))
    }

    async fn mark_unhealthy(&self, instance_id: &InstanceId) -> Result<(), AwsError> {
        self.set_instance_health()
            .instance_id(instance_id.as_str())
            .health_status("Unhealthy")
            .should_respect_grace_period(false)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("autoscaling", "SetInstanceHealth", &e))
    }

    async fn complete(
        &self,
        action: &LifecycleAction,
        result: ActionResult,
    ) -> Result<ActionAck, AwsError> {
        let mut req = self
            .complete_lifecycle_action()
            .auto_scaling_group_name(&action.asg)
            .set_lifecycle_hook_name(action.hook.clone())
            .lifecycle_action_result(result.as_str())
            .instance_id(action.instance_id.as_str());
        if let Some(token) = &action.token {
            req = req.lifecycle_action_token(token);
        }
        ack(req
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("autoscaling", "CompleteLifecycleAction", &e)))
    }

    async fn group(&self, name: &str) -> Result<Option<AsgGroup>, AwsError> {
        let found = describe_groups(self, Some(vec![name.to_owned()])).await?;
        Ok(found.into_iter().find(|g| g.name == name))
    }

    async fn groups(&self, names: &[String]) -> Result<Vec<AsgGroup>, AwsError> {
        if names.is_empty() {
            return describe_groups(self, None).await;
        }
        let mut groups = Vec::new();
        for chunk in names.chunks(DESCRIBE_GROUPS_MAX) {
            groups.extend(describe_groups(self, Some(chunk.to_vec())).await?);
        }
        Ok(groups)
    }

    async fn refreshes(&self, group: &str) -> Result<Vec<Refresh>, AwsError> {
        let mut out = describe_refreshes(self, group, REFRESHES_FEW).await?;
        // Newest first, whatever order the service used.
        out.sort_by_key(|r| std::cmp::Reverse(r.started_ms));
        Ok(out)
    }

    async fn newest_refresh(&self, group: &str) -> Result<Option<Refresh>, AwsError> {
        // The newest by start time, whatever order the page is in.
        let all = describe_refreshes(self, group, REFRESHES_PAGE).await?;
        Ok(all.into_iter().max_by_key(|r| r.started_ms))
    }

    async fn start_refresh(
        &self,
        group: &str,
        template_id: &str,
        version: i64,
        preferences: RefreshPreferences,
    ) -> Result<Option<String>, AwsError> {
        let result = self
            .start_instance_refresh()
            .auto_scaling_group_name(group)
            .strategy(RefreshStrategy::Rolling)
            .desired_configuration(
                DesiredConfiguration::builder()
                    .launch_template(
                        LaunchTemplateSpecification::builder()
                            .launch_template_id(template_id)
                            .version(version.to_string())
                            .build(),
                    )
                    .build(),
            )
            .preferences({
                let mut p = SdkPreferences::builder()
                    .min_healthy_percentage(preferences.min_healthy_percentage)
                    .max_healthy_percentage(preferences.max_healthy_percentage)
                    .skip_matching(true)
                    .auto_rollback(preferences.auto_rollback);
                if !preferences.checkpoint_percentages.is_empty() {
                    p = p
                        .set_checkpoint_percentages(Some(
                            preferences.checkpoint_percentages.clone(),
                        ))
                        .set_checkpoint_delay(preferences.checkpoint_delay_s);
                }
                if !preferences.alarms.is_empty() {
                    p = p.alarm_specification(
                        AlarmSpecification::builder()
                            .set_alarms(Some(preferences.alarms.clone()))
                            .build(),
                    );
                }
                p.build()
            })
            .send()
            .await;
        match result {
            Ok(resp) => Ok(resp.instance_refresh_id().map(str::to_owned)),
            Err(e) => {
                let err = aws_error("autoscaling", "StartInstanceRefresh", &e);
                if err.code.as_deref() == Some("InstanceRefreshInProgress") {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn rollback_refresh(&self, group: &str) -> Result<Option<String>, AwsError> {
        match self
            .rollback_instance_refresh()
            .auto_scaling_group_name(group)
            .send()
            .await
        {
            Ok(resp) => Ok(Some(
                resp.instance_refresh_id().unwrap_or_default().to_owned(),
            )),
            Err(e) => {
                let err = aws_error("autoscaling", "RollbackInstanceRefresh", &e);
                if err.code.as_deref() == Some("ActiveInstanceRefreshNotFound") {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn pin_template(
        &self,
        group: &str,
        template_id: &str,
        version: i64,
    ) -> Result<(), AwsError> {
        self.update_auto_scaling_group()
            .auto_scaling_group_name(group)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_id(template_id)
                    .version(version.to_string())
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("autoscaling", "UpdateAutoScalingGroup", &e))
    }

    async fn refused_launches(&self, group: &str, since_ms: u64) -> Result<Vec<String>, AwsError> {
        let resp = self
            .describe_scaling_activities()
            .auto_scaling_group_name(group)
            .max_records(RECENT_ACTIVITIES)
            .send()
            .await
            .map_err(|e| aws_error("autoscaling", "DescribeScalingActivities", &e))?;
        Ok(resp
            .activities()
            .iter()
            .filter_map(scaling_activity)
            .filter(|a| a.started_ms.unwrap_or(0) >= since_ms && a.is_refused_launch())
            .map(|a| {
                format!(
                    "{}: {}",
                    a.description,
                    a.status_message.as_deref().unwrap_or("no status message")
                )
            })
            .collect())
    }

    async fn activities_since(
        &self,
        group: &str,
        since_ms: u64,
    ) -> Result<Vec<ScalingActivity>, AwsError> {
        let mut pages = self
            .describe_scaling_activities()
            .auto_scaling_group_name(group)
            .max_records(ACTIVITIES_PAGE)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        let mut read = 0;
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| aws_error("autoscaling", "DescribeScalingActivities", &e))?;
            read += 1;
            let mut reached_back = false;
            for a in page.activities() {
                if epoch_ms(a.start_time()).is_some_and(|t| t < since_ms) {
                    reached_back = true;
                    continue;
                }
                out.extend(scaling_activity(a));
            }
            if reached_back || read >= ACTIVITIES_MAX_PAGES {
                break;
            }
        }
        Ok(out)
    }

    async fn set_group_tag(
        &self,
        group: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), AwsError> {
        let tag = Tag::builder()
            .resource_id(group)
            .resource_type("auto-scaling-group")
            .key(key)
            .set_value(value.map(str::to_owned))
            .propagate_at_launch(false)
            .build();
        match value {
            Some(_) => self
                .create_or_update_tags()
                .tags(tag)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_error("autoscaling", "CreateOrUpdateTags", &e)),
            None => self
                .delete_tags()
                .tags(tag)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_error("autoscaling", "DeleteTags", &e)),
        }
    }
}
