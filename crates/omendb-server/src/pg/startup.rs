//! Connection startup: the user and database the client asks for (the
//! superuser `omendb` and the database `omendb` are the only ones until
//! roles and databases are built; any other is refused as PostgreSQL
//! refuses an unknown one), the settings it passes (`application_name`,
//! `options=-c name=value`, ...) applied to its session, trust
//! authentication, then the reported settings (ParameterStatus) and the
//! key a cancel request names.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::LazyLock;

use async_trait::async_trait;
use futures::Sink;
use omendb_sql::QueryHandler;
use pgwire::api::auth::{
    ServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, METADATA_DATABASE, METADATA_USER, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::connection::Session;

/// The one role and the one database there are for now.
pub(super) const SUPERUSER: &str = "omendb";
pub(super) const DATABASE: &str = "omendb";

/// Startup parameters that are not settings.
const NOT_SETTINGS: &[&str] = &["user", "database", "options", "replication"];

/// Process ids and secret keys for the connections of this process.
static KEYS: LazyLock<RandomPidSecretKeyGenerator> =
    LazyLock::new(RandomPidSecretKeyGenerator::default);

/// A FATAL error: sent, then the connection ends.
fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        code.to_owned(),
        message,
    )))
}

/// The settings in a startup packet's `options` (`-c name=value`,
/// `-cname=value` or `--name=value`, separated by spaces).
fn options(text: &str) -> Result<Vec<(String, String)>, PgWireError> {
    let mut settings = Vec::new();
    let mut words = text.split_ascii_whitespace();
    while let Some(word) = words.next() {
        let setting = match word {
            "-c" => words.next().unwrap_or_default(),
            word => match word.strip_prefix("-c").or_else(|| word.strip_prefix("--")) {
                Some(setting) => setting,
                None => {
                    return Err(fatal(
                        "42601",
                        format!("invalid command-line argument for server process: {word}"),
                    ));
                }
            },
        };
        let Some((name, value)) = setting.split_once('=') else {
            return Err(fatal("42601", format!("-c {setting} requires a value")));
        };
        settings.push((name.replace('-', "_"), value.to_owned()));
    }
    Ok(settings)
}

/// What the client is told of at startup.
struct Reported(Vec<(String, String)>);

impl ServerParameterProvider for Reported {
    fn server_parameters<C: ClientInfo>(&self, _client: &C) -> Option<HashMap<String, String>> {
        Some(self.0.iter().cloned().collect())
    }
}

impl<H: QueryHandler> Session<H> {
    /// Applies the client's startup settings to its session.
    async fn apply_settings(&self, metadata: &HashMap<String, String>) -> PgWireResult<()> {
        let mut settings: Vec<(String, String)> = metadata
            .iter()
            .filter(|(name, _)| !NOT_SETTINGS.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        if let Some(text) = metadata.get("options") {
            settings.extend(options(text)?);
        }
        let mut state = self.state.lock().await;
        for (name, value) in settings {
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                return Err(fatal(
                    "42704",
                    format!("unrecognized configuration parameter \"{name}\""),
                ));
            }
            let sql = format!("SET {name} = '{}'", value.replace('\'', "''"));
            if let Some(Err(error)) = self.engine.execute(&mut state.sql, &sql, &[]).await.pop() {
                return Err(fatal(error.sqlstate(), error.message));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<H: QueryHandler + 'static> StartupHandler for Session<H> {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let PgWireFrontendMessage::Startup(startup) = message else {
            return Ok(());
        };
        if !self.within_limit {
            return Err(fatal("53300", "sorry, too many clients already".to_owned()));
        }
        protocol_negotiation(client, &startup).await?;
        save_startup_parameters_to_metadata(client, &startup);
        let metadata = client.metadata().clone();
        let Some(user) = metadata.get(METADATA_USER) else {
            return Err(fatal(
                "28000",
                "no PostgreSQL user name specified in startup packet".to_owned(),
            ));
        };
        if user != SUPERUSER {
            return Err(fatal("28000", format!("role \"{user}\" does not exist")));
        }
        // The database defaults to the user's name, as in PostgreSQL.
        let database = metadata.get(METADATA_DATABASE).unwrap_or(user);
        if database != DATABASE {
            return Err(fatal(
                "3D000",
                format!("database \"{database}\" does not exist"),
            ));
        }
        self.apply_settings(&metadata).await?;
        let (pid, secret) = KEYS.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        let mut state = self.state.lock().await;
        let canceller = self.engine.canceller(&state.sql);
        state.registration = Some(self.registry.register(pid, secret, canceller));
        state.reported = self.engine.reported_settings(&state.sql);
        let mut reported: Vec<(String, String)> = state
            .reported
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        reported.push(("session_authorization".to_owned(), user.clone()));
        drop(state);
        finish_authentication(client, &Reported(reported)).await
    }
}
