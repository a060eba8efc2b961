//! Instance refresh and scaling activities on the stand-in. moto has neither
//! (its instance refresh calls answer HTTP 500, its DescribeScalingActivities is
//! always empty); `tests/standin/standin.py` keeps them as Auto Scaling does and
//! lets a test play the refresh one batch at a time. Its docstring says what is
//! emulated and what is not.

use serde_json::{Value, json};

use crate::{Result, Standin};

impl Standin {
    /// Plays one batch of the group's latest instance refresh, as Auto Scaling
    /// would: `Pending` -> `InProgress` (nothing replaced on that call); then
    /// launch a batch from the desired launch template version and take as many
    /// old instances out; on the last batch the refresh ends `Successful` and the
    /// group takes the desired configuration. A rollback walks back the same way
    /// to `RollbackSuccessful`; `Cancelling` -> `Cancelled`. The group's hooks are
    /// not waited on (see [`Standin::refresh_step_with`]).
    ///
    /// Returns `{"status", "launched": [ids], "terminated": [ids], "waiting": [ids],
    /// "percentage", "instance_refresh_id"}`.
    pub fn refresh_step(&self, group: &str) -> Result<Value> {
        self.post("/_standin/refresh/step", json!({"group": group}))
    }

    /// [`Standin::refresh_step`] where new instances enter `launch_state`
    /// (`"InService"` or `"Pending:Wait"`: the group's launch hook starts an action
    /// and notifies) and old ones `terminate_state` (`"Terminated"` or
    /// `"Terminating:Wait"`: through the terminate hook). A batch waiting on an
    /// action lists its instances in `"waiting"`; later steps carry it on once the
    /// test completes the actions. An ABANDONed launch is terminated.
    pub fn refresh_step_with(
        &self,
        group: &str,
        launch_state: &str,
        terminate_state: &str,
    ) -> Result<Value> {
        self.post(
            "/_standin/refresh/step",
            json!({"group": group, "launch_state": launch_state, "terminate_state": terminate_state}),
        )
    }

    /// The group's active refresh fails with `reason` (as after failed health
    /// checks): with AutoRollback it goes `RollbackInProgress` (RollbackDetails
    /// carry the reason), otherwise `Failed` (StatusReason); a rollback in progress
    /// ends `RollbackFailed`. Returns the refresh in DescribeInstanceRefreshes' shape.
    pub fn refresh_fail(&self, group: &str, reason: &str) -> Result<Value> {
        self.post(
            "/_standin/refresh/fail",
            json!({"group": group, "reason": reason}),
        )
    }

    /// Records a scaling activity for the group (DescribeScalingActivities lists
    /// it first). `status_code` is a ScalingActivityStatusCode (`"Failed"`,
    /// `"Cancelled"`, ...). Returns the activity in DescribeScalingActivities' shape.
    pub fn record_activity(
        &self,
        group: &str,
        status_code: &str,
        description: &str,
        status_message: Option<&str>,
        cause: Option<&str>,
    ) -> Result<Value> {
        self.post(
            "/_standin/activity",
            json!({"group": group, "status_code": status_code, "description": description,
                   "status_message": status_message, "cause": cause}),
        )
    }

    /// EC2 refuses the group's next `failures` launches for capacity (`code`:
    /// `InsufficientInstanceCapacity`, `SpotCapacity`, `VcpuLimitExceeded`,
    /// `InstanceLimitExceeded`): each is a Failed scaling activity with EC2's
    /// wording, and the refresh tries the batch again on its next step.
    pub fn refresh_capacity_failures(
        &self,
        group: &str,
        failures: u32,
        code: &str,
    ) -> Result<Value> {
        self.post(
            "/_standin/refresh/capacity",
            json!({"group": group, "failures": failures, "code": code}),
        )
    }

    /// The group's ended refreshes move `days` back in time (the stand-in's
    /// clock, compressed): those ended more than six weeks ago are no longer
    /// described, as AWS keeps only recent history.
    pub fn age_refresh_history(&self, group: &str, days: u32) -> Result<Value> {
        self.post(
            "/_standin/refresh/age",
            json!({"group": group, "days": days}),
        )
    }

    /// When the `nth` AWS call matching one of `calls` (`"autoscaling:Op"`)
    /// arrives, the group's refresh is played to its end before the call is
    /// answered: a look that straddles the end of a refresh.
    pub fn finish_refresh_on(&self, group: &str, calls: &[&str], nth: u32) -> Result<Value> {
        self.post(
            "/_standin/refresh/finish-on",
            json!({"group": group, "calls": calls, "nth": nth}),
        )
    }

    /// What DescribeImages reports of an existing image from now on: any of
    /// `state`, `owner_id`, `owner_alias` (`null` for none), `architecture`.
    pub fn set_image(&self, image_id: &str, attributes: Value) -> Result<Value> {
        let mut body = attributes;
        body["image_id"] = json!(image_id);
        self.post("/_standin/ec2/image", body)
    }
}
