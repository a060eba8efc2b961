#!/usr/bin/env python3
"""AWS stand-in for the integration tests: moto server 5.2.5, patched, on loopback.

Usage: python tests/standin/standin.py [--host 127.0.0.1] [--port 0] [--no-stdin-watch]

Prints exactly one line `STANDIN_READY http://<host>:<port>` on stdout once serving,
then never writes to stdout again; exits on SIGTERM / SIGINT and when stdin reaches EOF
(`--no-stdin-watch` turns that off). crates/testkit/src/standin.rs starts it with the
venv's Python and a piped stdin; tests/standin/selfcheck.py checks it.

This file only launches the stand-in: the code is the package standin/ beside it (a
package directory wins over this file for `import standin`), one module per service.
standin/__init__.py lists the modules; each module's docstring says what it emulates
and why moto 5.2.5 lacks or misplays it, and the places are marked `STAND-IN:`.

WHERE IT STANDS IN FOR AWS (a correct client could fail against raw moto, a wrong one pass):
  Auto Scaling   lifecycle hooks (PutLifecycleHook keeps every field), lifecycle actions
                 (wait states, the hook's notification, CompleteLifecycleAction,
                 RecordLifecycleActionHeartbeat), the heartbeat and global timeouts by
                 the clock (opt-in), the state and launch template version each
                 instance reports ............................. standin/autoscaling.py
                 instance refresh, played one batch per /_standin/refresh/step;
                 launches refused for capacity; six weeks of history
                 ................................................... standin/refresh.py
                 scaling activities (DescribeScalingActivities) . standin/activities.py
  EC2            CreateLaunchTemplateVersion SourceVersion, version "0"; an image's
                 state, owner and architecture (DescribeImages) ...... standin/ec2.py
  ECS            StopTask transitions, the service scheduler on DRAINING, counters,
                 ListTasks / ListContainerInstances / DescribeTasks, batch limits
                 ....................................................... standin/ecs.py
  SNS -> Lambda  subscriptions delivered in-process; the Lambda Runtime API
                 ................................................. standin/awslambda.py
  SSM            SendCommand / GetCommandInvocation outcomes ....... standin/ssm.py
  Throttling     AWS's account-wide token buckets (moto never throttles); faults for
                 a count of calls or a time window (an outage) ..... standin/control.py
  (tests only)   the /_standin/ control endpoints, call counts, fault injection
                 ................................................... standin/control.py
  (tests only)   what IAM authorizes for each request a function makes, recorded
                 for the IAM check (ECS_LIFECYCLE_IAM_RECORD) ........ standin/iam.py
Everything else is plain moto 5.2.5.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # e.g. under python -P
    sys.path.insert(0, HERE)

from standin.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
