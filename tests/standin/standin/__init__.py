"""The AWS stand-in for the integration tests, by service: moto server 5.2.5, patched.

tests/standin/standin.py starts it (and lists what is stood in for, and where). Each
module's docstring says what it emulates and why moto 5.2.5 lacks it:

  app.py          the server: WSGI app (control / Runtime API / AWS routing), main(),
                  the STANDIN_READY line and the stdin-close shutdown
  control.py      the /_standin/ control endpoints, the call counter, fault injection
                  (a count of calls or a time window), AWS's throttling token buckets
  autoscaling.py  lifecycle hooks and actions, their heartbeat and global timeouts by
                  the clock (opt-in); each instance's state and launch template
                  version as Auto Scaling reports them
  activities.py   scaling activities (DescribeScalingActivities)
  refresh.py      instance refresh (Start/Describe/Cancel/RollbackInstanceRefresh), launches
                  refused for capacity, the history's six weeks
  ec2.py          launch template versions (SourceVersion, version "0"); an image's state,
                  owner and architecture
  ecs.py          task stop transitions, the scheduler on DRAINING, counters, paging
  awslambda.py    the Lambda Runtime API, invocations, SNS -> Lambda subscriptions
  ssm.py          SSM Run Command outcomes
  iam.py          (recording only, changes no answer) what IAM would authorize for each
                  request a function makes, for the IAM check, when
                  ECS_LIFECYCLE_IAM_RECORD names a directory
  common.py       what they share: account, region, MOTO_LOCK, errors, helpers

Importing a service module applies its patches to moto (it replaces attributes of
moto's models and responses); app.py imports every one. Imports between the modules
go one way: common <- activities <- autoscaling <- refresh; common <- ec2, ecs,
awslambda, ssm, iam; all of those <- control <- app.

This file runs first: it sets what moto reads when it is imported (account id, region,
dummy credentials) and refuses any moto but 5.2.5. The patches reach into moto's
internals and are only valid for the pinned version (see requirements.txt).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("MOTO_ACCOUNT_ID", "123456789012")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# moto signs nothing and checks nothing; these only keep botocore quiet if it looks.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

import moto  # noqa: E402

if moto.__version__ != "5.2.5":  # the patches are written against 5.2.5
    sys.stderr.write(f"standin: expected moto 5.2.5, found {moto.__version__}\n")
    sys.exit(2)
