//! launch-verify: the Auto Scaling launch lifecycle hook for ECS container
//! instances. See the README for configuration.

fn main() {}
