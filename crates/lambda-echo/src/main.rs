//! lambda-echo: a bare `lambda_runtime` function that answers every event with
//! the event itself. Not deployed; the benchmark's baseline (docs/benchmarks.md):
//! the same runtime, tokio flavour and release profile as the functions, none of
//! their code or SDK clients.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|e: LambdaEvent<Value>| async move {
        Ok::<_, Error>(e.payload)
    }))
    .await
}
