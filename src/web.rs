//! The HTTP endpoint's TLS and users in force (`--web.config.file`): swapped whole by a reload,
//! which the supervisor runs, and read once per connection by [`crate::http`].

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio_rustls::TlsAcceptor;

use crate::auth::BasicAuth;
use crate::config::web::WebConfig;

/// The web config in force: swapped whole by a reload, read once per connection.
pub struct Web {
    file: Option<PathBuf>,
    current: RwLock<Arc<Served>>,
}

/// What one connection is served with.
pub struct Served {
    pub tls: Option<TlsAcceptor>,
    pub auth: BasicAuth,
}

impl Web {
    pub fn new(file: Option<PathBuf>, config: WebConfig) -> Web {
        Web {
            file,
            current: RwLock::new(Arc::new(Served::from(config))),
        }
    }

    pub fn file(&self) -> Option<&PathBuf> {
        self.file.as_ref()
    }

    pub fn apply(&self, config: WebConfig) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Served::from(config));
    }

    /// What a new connection is served with.
    pub fn current(&self) -> Arc<Served> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl From<WebConfig> for Served {
    fn from(config: WebConfig) -> Served {
        Served {
            tls: config.tls.map(TlsAcceptor::from),
            auth: BasicAuth::new(config.users),
        }
    }
}
