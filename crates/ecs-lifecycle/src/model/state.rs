//! The states AWS reports, as enums: one spelling (AWS's, through `Display`), one
//! parser, and one set of predicates that every workflow uses. A value AWS adds
//! later is kept verbatim in `Other` rather than refused.

use std::fmt;

use serde::{Serialize, Serializer};

/// Declares a string-backed state enum: `parse` / `From<&str>`, `as_str`,
/// `Display` and `Serialize` all use AWS's spelling.
macro_rules! aws_state {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this version does not know, verbatim.
            Other(String),
        }

        impl $name {
            pub fn parse(s: &str) -> Self {
                match s {
                    $($text => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

aws_state! {
    /// An instance's lifecycle state in its Auto Scaling group.
    LifecycleState {
        Pending => "Pending",
        PendingWait => "Pending:Wait",
        PendingProceed => "Pending:Proceed",
        Quarantined => "Quarantined",
        InService => "InService",
        Terminating => "Terminating",
        TerminatingWait => "Terminating:Wait",
        TerminatingProceed => "Terminating:Proceed",
        TerminatingRetained => "Terminating:Retained",
        Terminated => "Terminated",
        Detaching => "Detaching",
        Detached => "Detached",
        EnteringStandby => "EnteringStandby",
        Standby => "Standby",
        WarmedPending => "Warmed:Pending",
        WarmedPendingWait => "Warmed:Pending:Wait",
        WarmedPendingProceed => "Warmed:Pending:Proceed",
        WarmedTerminating => "Warmed:Terminating",
        WarmedTerminatingWait => "Warmed:Terminating:Wait",
        WarmedTerminatingProceed => "Warmed:Terminating:Proceed",
        WarmedTerminated => "Warmed:Terminated",
        WarmedStopped => "Warmed:Stopped",
        WarmedRunning => "Warmed:Running",
        WarmedHibernated => "Warmed:Hibernated",
    }
}

impl LifecycleState {
    /// An instance lifecycle policy keeps the instance after its lifecycle
    /// action was abandoned (`Terminating:Retained`, and the warm pool's
    /// `...:Retained`): it stays, out of desired capacity, until terminated.
    pub fn is_retained(&self) -> bool {
        self.as_str().ends_with(":Retained")
    }

    /// A terminate lifecycle action waits on a hook (in the group or its warm pool).
    pub fn is_terminate_wait(&self) -> bool {
        matches!(self, Self::TerminatingWait | Self::WarmedTerminatingWait)
    }

    /// A launch lifecycle action waits on a hook (in the group or its warm pool).
    pub fn is_launch_wait(&self) -> bool {
        matches!(self, Self::PendingWait | Self::WarmedPendingWait)
    }

    /// In the group's warm pool (any `Warmed:*` state).
    pub fn is_warmed(&self) -> bool {
        self.as_str().starts_with("Warmed:")
    }

    /// Some lifecycle action waits on a hook.
    pub fn is_waiting(&self) -> bool {
        self.is_terminate_wait() || self.is_launch_wait()
    }

    /// The instance is on its way out of the group's serving capacity: being
    /// terminated or detached, or (warm pool) not serving at all. An instance that
    /// is leaving is never an orphan and never counts as capacity.
    pub fn is_leaving(&self) -> bool {
        let s = self.as_str();
        s.starts_with("Terminat")
            || self.is_warmed()
            || matches!(self, Self::Detaching | Self::Detached)
    }
}

aws_state! {
    /// An Auto Scaling instance refresh's status.
    RefreshStatus {
        Pending => "Pending",
        InProgress => "InProgress",
        Successful => "Successful",
        Failed => "Failed",
        Cancelling => "Cancelling",
        Cancelled => "Cancelled",
        RollbackInProgress => "RollbackInProgress",
        RollbackFailed => "RollbackFailed",
        RollbackSuccessful => "RollbackSuccessful",
        Baking => "Baking",
    }
}

impl RefreshStatus {
    /// Auto Scaling refuses a new refresh while one is in these states.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            Self::Pending
                | Self::InProgress
                | Self::Cancelling
                | Self::RollbackInProgress
                | Self::Baking
        )
    }

    /// Replacing instances towards its desired configuration (rollback possible).
    pub fn is_rolling(&self) -> bool {
        matches!(self, Self::Pending | Self::InProgress | Self::Baking)
    }
}

aws_state! {
    /// An AMI's state (DescribeImages).
    ImageState {
        Pending => "pending",
        Available => "available",
        Invalid => "invalid",
        Deregistered => "deregistered",
        Transient => "transient",
        Failed => "failed",
        Error => "error",
        Disabled => "disabled",
    }
}

impl ImageState {
    /// The only state in which EC2 launches the image.
    pub fn is_available(&self) -> bool {
        *self == Self::Available
    }
}

aws_state! {
    /// An ECS task's `lastStatus` or `desiredStatus`.
    TaskStatus {
        Provisioning => "PROVISIONING",
        Pending => "PENDING",
        Activating => "ACTIVATING",
        Running => "RUNNING",
        Deactivating => "DEACTIVATING",
        Stopping => "STOPPING",
        Deprovisioning => "DEPROVISIONING",
        Stopped => "STOPPED",
        Deleted => "DELETED",
    }
}

impl TaskStatus {
    /// The only states in which a task holds nothing on its instance any more.
    pub fn is_stopped(&self) -> bool {
        matches!(self, Self::Stopped | Self::Deleted)
    }
}

aws_state! {
    /// An ECS container instance's status.
    InstanceStatus {
        Active => "ACTIVE",
        Draining => "DRAINING",
        Registering => "REGISTERING",
        RegistrationFailed => "REGISTRATION_FAILED",
        Deregistering => "DEREGISTERING",
        Inactive => "INACTIVE",
    }
}

aws_state! {
    /// An EC2 instance's state name.
    Ec2State {
        Pending => "pending",
        Running => "running",
        ShuttingDown => "shutting-down",
        Terminated => "terminated",
        Stopping => "stopping",
        Stopped => "stopped",
    }
}

impl Ec2State {
    pub fn is_running(&self) -> bool {
        *self == Self::Running
    }

    pub fn is_pending(&self) -> bool {
        *self == Self::Pending
    }
}

aws_state! {
    /// An SSM command invocation's status.
    CommandStatus {
        Pending => "Pending",
        InProgress => "InProgress",
        Delayed => "Delayed",
        Success => "Success",
        Cancelling => "Cancelling",
        Cancelled => "Cancelled",
        TimedOut => "TimedOut",
        Failed => "Failed",
    }
}

impl CommandStatus {
    /// The command has ended on the instance, one way or another.
    pub fn is_finished(&self) -> bool {
        !matches!(
            self,
            Self::Pending | Self::InProgress | Self::Delayed | Self::Cancelling
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_round_trips_and_unknown_values_are_kept() {
        for s in ["Terminating:Wait", "Warmed:Pending:Wait", "InService"] {
            assert_eq!(LifecycleState::parse(s).to_string(), s);
        }
        assert_eq!(
            InstanceStatus::RegistrationFailed.to_string(),
            "REGISTRATION_FAILED"
        );
        assert_eq!(
            TaskStatus::parse("NEW_ONE"),
            TaskStatus::Other("NEW_ONE".into())
        );
        assert_eq!(
            serde_json::to_value(Ec2State::ShuttingDown).ok(),
            Some(serde_json::json!("shutting-down"))
        );
    }

    #[test]
    fn only_an_available_image_launches() {
        for (s, ok) in [
            ("available", true),
            ("pending", false),
            ("failed", false),
            ("deregistered", false),
            ("disabled", false),
            ("something-new", false),
        ] {
            assert_eq!(ImageState::parse(s).is_available(), ok, "{s}");
            assert_eq!(ImageState::parse(s).to_string(), s);
        }
    }

    #[test]
    fn lifecycle_predicates() {
        use LifecycleState as L;
        for (s, waiting, leaving) in [
            (L::PendingWait, true, false),
            (L::WarmedPendingWait, true, true),
            (L::InService, false, false),
            (L::Standby, false, false),
            (L::TerminatingWait, true, true),
            (L::Terminating, false, true),
            (L::TerminatingProceed, false, true),
            (L::Terminated, false, true),
            (L::WarmedTerminatingWait, true, true),
            (L::Detaching, false, true),
            (L::Detached, false, true),
        ] {
            assert_eq!(s.is_waiting(), waiting, "{s} waiting");
            assert_eq!(s.is_leaving(), leaving, "{s} leaving");
        }
        assert!(L::TerminatingWait.is_terminate_wait() && !L::TerminatingWait.is_launch_wait());
        assert!(L::PendingWait.is_launch_wait() && !L::PendingWait.is_terminate_wait());
    }

    #[test]
    fn finished_commands_and_stopped_tasks() {
        for (s, done) in [
            ("Pending", false),
            ("InProgress", false),
            ("Delayed", false),
            ("Cancelling", false),
            ("Success", true),
            ("Failed", true),
            ("TimedOut", true),
            ("Cancelled", true),
        ] {
            assert_eq!(CommandStatus::parse(s).is_finished(), done, "{s}");
        }
        assert!(TaskStatus::Stopped.is_stopped());
        assert!(!TaskStatus::Deprovisioning.is_stopped());
    }
}
