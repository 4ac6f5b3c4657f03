//! Job handlers: what a job runs. Handlers are registered by name on every
//! node (the host's built-ins and each plugin's); a job whose handler is not
//! registered on a node is paused there until it is.

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use lina_coord_api::NodeId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::model::{JobScope, Trigger};

/// What a handler gets for one run.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job.
    pub job_id: i64,
    /// The run's log row.
    pub log_id: i64,
    /// The job's parameters.
    pub params: Value,
    /// Cancelled at the job's timeout and at shutdown: stop promptly.
    pub cancel: CancellationToken,
    /// The node running it.
    pub node_id: NodeId,
    /// Leader term of a master_only run.
    pub term: Option<u64>,
    /// The fire instant (Unix ms).
    pub scheduled_at: i64,
    /// What started it.
    pub trigger: Trigger,
}

/// A handler's failure; its text goes to `sys_job_log.err_msg`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JobError(pub String);

impl JobError {
    /// From anything printable.
    pub fn new(message: impl std::fmt::Display) -> Self {
        JobError(message.to_string())
    }
}

/// Runs jobs of one kind.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Runs once; the returned JSON goes to `sys_job_log.result_json`.
    async fn run(&self, ctx: JobContext) -> Result<Value, JobError>;

    /// Checks parameters before a job is saved.
    fn validate(&self, _params: &Value) -> Result<(), String> {
        Ok(())
    }
}

/// How a handler is listed (`GET /api/v1/job/handler`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandlerInfo {
    /// Registered name, e.g. `host:wait`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its parameters.
    pub params_schema: Value,
    /// The scope jobs of this handler usually have.
    pub default_scope: JobScope,
    /// `host` or the plugin id that registered it.
    pub source: String,
}

/// A handler with typed parameters: the job's `params` are decoded into `P`
/// (missing fields take `P`'s serde defaults), and bad parameters are
/// refused when the job is saved.
pub struct Typed<P, F> {
    f: F,
    _params: PhantomData<fn() -> P>,
}

/// Wraps `f` as a handler taking typed parameters.
pub fn typed<P, F, Fut>(f: F) -> Typed<P, F>
where
    P: DeserializeOwned + Send + 'static,
    F: Fn(P, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
{
    Typed {
        f,
        _params: PhantomData,
    }
}

#[async_trait]
impl<P, F, Fut> JobHandler for Typed<P, F>
where
    P: DeserializeOwned + Send + 'static,
    F: Fn(P, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
{
    async fn run(&self, ctx: JobContext) -> Result<Value, JobError> {
        let params: P = serde_json::from_value(ctx.params.clone())
            .map_err(|e| JobError(format!("invalid params: {e}")))?;
        (self.f)(params, ctx).await
    }

    fn validate(&self, params: &Value) -> Result<(), String> {
        serde_json::from_value::<P>(params.clone())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

type Entry = (HandlerInfo, Arc<dyn JobHandler>);

/// The handlers of this node, by name.
pub struct HandlerRegistry {
    handlers: RwLock<BTreeMap<String, Entry>>,
    changed: watch::Sender<u64>,
}

impl std::fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerRegistry")
            .field(
                "handlers",
                &self
                    .list()
                    .iter()
                    .map(|h| h.name.clone())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for HandlerRegistry {
    fn default() -> Self {
        HandlerRegistry {
            handlers: RwLock::new(BTreeMap::new()),
            changed: watch::channel(0).0,
        }
    }
}

impl HandlerRegistry {
    /// Registers `handler` under `info.name`; refuses a taken name.
    pub fn register(&self, info: HandlerInfo, handler: Arc<dyn JobHandler>) -> Result<()> {
        let name = info.name.clone();
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_whitespace) {
            return Err(Error::invalid(
                "handlerRef",
                format!("{name:?} must be 1 to 128 characters without spaces"),
            ));
        }
        {
            let mut handlers = self.handlers.write().expect("handlers lock");
            if handlers.contains_key(&name) {
                return Err(Error::Conflict(format!(
                    "handler {name} is already registered"
                )));
            }
            handlers.insert(name, (info, handler));
        }
        self.changed.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Removes a handler (a plugin was disabled); its jobs pause.
    pub fn unregister(&self, name: &str) -> bool {
        let removed = self
            .handlers
            .write()
            .expect("handlers lock")
            .remove(name)
            .is_some();
        if removed {
            self.changed.send_modify(|n| *n += 1);
        }
        removed
    }

    /// The handler named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers
            .read()
            .expect("handlers lock")
            .get(name)
            .map(|(_, h)| h.clone())
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.handlers
            .read()
            .expect("handlers lock")
            .contains_key(name)
    }

    /// Every handler's description, by name.
    pub fn list(&self) -> Vec<HandlerInfo> {
        self.handlers
            .read()
            .expect("handlers lock")
            .values()
            .map(|(info, _)| info.clone())
            .collect()
    }

    /// Checks `params` against handler `name`.
    pub fn validate(&self, name: &str, params: &Value) -> Result<()> {
        match self.get(name) {
            None => Err(Error::invalid(
                "handlerRef",
                format!("{name:?} is not a registered handler"),
            )),
            Some(handler) => handler
                .validate(params)
                .map_err(|e| Error::invalid("params", format!("invalid for {name}: {e}"))),
        }
    }

    /// A counter that changes with every registration or removal.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
