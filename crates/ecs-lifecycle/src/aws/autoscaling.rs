use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::types::{
    AlarmSpecification, DesiredConfiguration, LaunchTemplateSpecification,
    RefreshPreferences as SdkPreferences, RefreshStrategy, ScalingActivityStatusCode, Tag,
};

use super::aws_error;
use crate::error::AwsError;
use crate::model::{
    ActionAck, ActionResult, AsgGroup, AsgInstance, HookTimeouts, LifecycleAction, LifecycleState,
    Refresh, RefreshPreferences, RefreshStatus, TemplateSpec,
};
use crate::ports::AutoScaling;

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

impl AutoScaling for Client {
    async fn instance(&self, instance_id: &str) -> Result<Option<AsgInstance>, AwsError> {
        let resp = self
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| aws_error("autoscaling", "DescribeAutoScalingInstances", &e))?;
        Ok(resp
            .auto_scaling_instances()
            .iter()
            .find(|i| i.instance_id() == Some(instance_id))
            .map(|i| AsgInstance {
                asg: i.auto_scaling_group_name().unwrap_or_default().to_owned(),
                lifecycle_state: LifecycleState::parse(i.lifecycle_state().unwrap_or_default()),
            }))
    }

    async fn hook_timeouts(&self, asg: &str, hook: &str) -> Result<Option<HookTimeouts>, AwsError> {
        let resp = self
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(asg)
            .lifecycle_hook_names(hook)
            .send()
            .await
            .map_err(|e| aws_error("autoscaling", "DescribeLifecycleHooks", &e))?;
        Ok(resp
            .lifecycle_hooks()
            .iter()
            .find(|h| h.lifecycle_hook_name() == Some(hook))
            .map(|h| {
                let heartbeat = h
                    .heartbeat_timeout()
                    .map_or(HookTimeouts::DEFAULT.heartbeat_timeout_s, |s| {
                        u64::try_from(s).unwrap_or(0)
                    });
                let mut t = HookTimeouts::from_heartbeat(heartbeat);
                if let Some(global) = h.global_timeout().and_then(|g| u64::try_from(g).ok()) {
                    t.global_timeout_s = global;
                }
                t
            }))
    }

    async fn heartbeat(&self, action: &LifecycleAction) -> Result<ActionAck, AwsError> {
        let mut req = self
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&action.asg)
            .lifecycle_hook_name(&action.hook);
        req = match &action.token {
            Some(token) => req.lifecycle_action_token(token),
            None => req.instance_id(&action.instance_id),
        };
        ack(req
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("autoscaling", "RecordLifecycleActionHeartbeat", &e)))
    }

    async fn terminate_instance(&self, instance_id: &str) -> Result<(), AwsError> {
        self.terminate_instance_in_auto_scaling_group()
            .instance_id(instance_id)
            .should_decrement_desired_capacity(false)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("autoscaling", "TerminateInstanceInAutoScalingGroup", &e))
    }

    async fn mark_unhealthy(&self, instance_id: &str) -> Result<(), AwsError> {
        self.set_instance_health()
            .instance_id(instance_id)
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
            .lifecycle_hook_name(&action.hook)
            .lifecycle_action_result(result.as_str())
            .instance_id(&action.instance_id);
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
        let resp = self
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| aws_error("autoscaling", "DescribeAutoScalingGroups", &e))?;
        let Some(g) = resp
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(name))
        else {
            return Ok(None);
        };
        let template = match (g.launch_template(), g.mixed_instances_policy()) {
            (Some(t), _) => match (t.launch_template_id(), t.version()) {
                (Some(id), version) => Ok(TemplateSpec {
                    id: id.to_owned(),
                    version: version.unwrap_or("$Default").to_owned(),
                }),
                (None, _) => Err("its launch template reference has no id".to_owned()),
            },
            (None, Some(_)) => Err(
                "it uses a mixed instances policy (not supported yet: give it a plain launch template)"
                    .to_owned(),
            ),
            (None, None) => Err(
                "it uses a launch configuration (deprecated by AWS); move it to a launch template"
                    .to_owned(),
            ),
        };
        Ok(Some(AsgGroup {
            name: name.to_owned(),
            desired_capacity: g.desired_capacity().unwrap_or(0),
            template,
            instances: g
                .instances()
                .iter()
                .filter_map(|i| {
                    Some((
                        i.instance_id()?.to_owned(),
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
                .filter_map(|i| i.instance_id().map(str::to_owned))
                .collect(),
        }))
    }

    async fn refreshes(&self, group: &str) -> Result<Vec<Refresh>, AwsError> {
        let resp = self
            .describe_instance_refreshes()
            .auto_scaling_group_name(group)
            .max_records(10)
            .send()
            .await
            .map_err(|e| aws_error("autoscaling", "DescribeInstanceRefreshes", &e))?;
        let mut out: Vec<Refresh> = resp
            .instance_refreshes()
            .iter()
            .filter_map(|r| {
                Some(Refresh {
                    id: r.instance_refresh_id()?.to_owned(),
                    status: RefreshStatus::parse(r.status()?.as_str()),
                    status_reason: r.status_reason().map(str::to_owned),
                    started_ms: r
                        .start_time()
                        .and_then(|t| u64::try_from(t.to_millis().ok()?).ok()),
                    percentage: r.percentage_complete(),
                    instances_to_update: r.instances_to_update(),
                    desired_version: r
                        .desired_configuration()
                        .and_then(|d| d.launch_template())
                        .and_then(|t| t.version())
                        .and_then(|v| v.parse().ok()),
                    ours: None,
                    rollback_reason: r
                        .rollback_details()
                        .and_then(|d| d.rollback_reason())
                        .map(str::to_owned),
                })
            })
            .collect();
        // Newest first, whatever order the service used.
        out.sort_by_key(|r| std::cmp::Reverse(r.started_ms));
        Ok(out)
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
            .max_records(50)
            .send()
            .await
            .map_err(|e| aws_error("autoscaling", "DescribeScalingActivities", &e))?;
        Ok(resp
            .activities()
            .iter()
            .filter(|a| {
                let started = a
                    .start_time()
                    .and_then(|t| u64::try_from(t.to_millis().ok()?).ok())
                    .unwrap_or(0);
                started >= since_ms
                    && a.description()
                        .is_some_and(|d| d.starts_with("Launching a new EC2 instance"))
                    && matches!(
                        a.status_code(),
                        Some(
                            ScalingActivityStatusCode::Cancelled
                                | ScalingActivityStatusCode::Failed
                        )
                    )
            })
            .map(|a| {
                format!(
                    "{}: {}",
                    a.description().unwrap_or_default(),
                    a.status_message().unwrap_or("no status message")
                )
            })
            .collect())
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
