//! `GATEWAY__SECTION__KEY=value` overrides, typed by the field they set: the value is read as
//! a whole number, a boolean or a list when the field at that path is one (known from the file,
//! else from the defaults written out as TOML), and as text otherwise. So `1234` aimed at a
//! text field stays text, and `abc` aimed at a number is refused, naming the variable.

use super::ConfigError;

/// Prefix of environment overrides: `GATEWAY__SERVER__BIND` sets `server.bind`.
pub const ENV_PREFIX: &str = "GATEWAY__";

/// Applies the overrides in `env` to `table` (the file), typed after `table` or `shape` (the
/// defaults). Returns the dotted keys it set.
pub(super) fn apply(
    table: &mut toml::Table,
    shape: &toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, ConfigError> {
    let mut overridden = Vec::new();
    for (name, raw) in env {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
        let bad = |message: String| ConfigError::Key {
            source_name: format!("environment variable {name}"),
            key: keys.join("."),
            message,
        };
        if keys.iter().any(|k| k.is_empty()) {
            return Err(bad("empty key segment".into()));
        }
        let like = lookup(table, &keys).or_else(|| lookup(shape, &keys));
        let value = typed(&raw, like).map_err(bad)?;
        set_path(table, &keys, value);
        overridden.push(keys.join("."));
    }
    Ok(overridden)
}

/// `DATABASE_URL`, the name every PostgreSQL tool knows, sets `storage.database_url` unless the
/// file or a `GATEWAY__STORAGE__DATABASE_URL` already did.
pub(super) fn database_url(table: &mut toml::Table, env: &[(String, String)]) {
    let keys = ["storage".to_string(), "database_url".to_string()];
    if lookup(table, &keys).is_some() {
        return;
    }
    if let Some((_, url)) = env
        .iter()
        .find(|(k, v)| k == "DATABASE_URL" && !v.is_empty())
    {
        set_path(table, &keys, toml::Value::String(url.clone()));
    }
}

fn lookup<'a>(table: &'a toml::Table, keys: &[String]) -> Option<&'a toml::Value> {
    let (last, parents) = keys.split_last()?;
    let mut cur = table;
    for k in parents {
        cur = cur.get(k)?.as_table()?;
    }
    cur.get(last)
}

/// The environment's text as a value of the kind `like` is.
fn typed(raw: &str, like: Option<&toml::Value>) -> Result<toml::Value, String> {
    let raw = raw.trim();
    Ok(match like {
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            raw.parse()
                .map_err(|_| format!("expected a whole number, got {raw:?}"))?,
        ),
        Some(toml::Value::Float(_)) => toml::Value::Float(
            raw.parse()
                .map_err(|_| format!("expected a number, got {raw:?}"))?,
        ),
        Some(toml::Value::Boolean(_)) => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
            "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err(format!("expected true or false, got {raw:?}")),
        },
        Some(toml::Value::Array(_)) => toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .filter(toml::Value::is_array)
            .ok_or_else(|| format!("expected a list like [\"a\", \"b\"], got {raw:?}"))?,
        Some(toml::Value::Table(_)) => {
            return Err("this is a section: set its keys one by one".into());
        }
        _ => toml::Value::String(raw.to_string()),
    })
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) {
    let (last, parents) = keys.split_last().expect("at least one key");
    let mut cur = table;
    for k in parents {
        let entry = cur
            .entry(k.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        cur = entry.as_table_mut().expect("just made a table");
    }
    cur.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> toml::Table {
        toml::from_str(
            "[server]\nbind = \"127.0.0.1:8080\"\nmax_connections = 1024\n\
             [whatsapp.webdriver]\nheadless = true\nbrowser_args = []\n",
        )
        .unwrap()
    }

    fn set(name: &str, raw: &str) -> Result<toml::Table, ConfigError> {
        let mut t = toml::Table::new();
        apply(&mut t, &shape(), [(name.to_string(), raw.to_string())])?;
        Ok(t)
    }

    #[test]
    fn a_value_takes_the_type_of_the_field_it_sets() {
        let t = set("GATEWAY__SERVER__MAX_CONNECTIONS", "2048").unwrap();
        assert_eq!(t["server"]["max_connections"].as_integer(), Some(2048));
        // A number aimed at a text field stays text.
        let t = set("GATEWAY__TEMPLATES__OTP", "1234").unwrap();
        assert_eq!(t["templates"]["otp"].as_str(), Some("1234"));
        let t = set("GATEWAY__WHATSAPP__WEBDRIVER__HEADLESS", "false").unwrap();
        assert_eq!(
            t["whatsapp"]["webdriver"]["headless"].as_bool(),
            Some(false)
        );
        let t = set(
            "GATEWAY__WHATSAPP__WEBDRIVER__BROWSER_ARGS",
            "[\"--proxy-server=socks5://127.0.0.1:1080\"]",
        )
        .unwrap();
        assert_eq!(
            t["whatsapp"]["webdriver"]["browser_args"][0].as_str(),
            Some("--proxy-server=socks5://127.0.0.1:1080")
        );
    }

    #[test]
    fn a_value_that_does_not_fit_its_field_names_the_variable() {
        let err = set("GATEWAY__SERVER__MAX_CONNECTIONS", "many")
            .unwrap_err()
            .to_string();
        assert!(err.contains("GATEWAY__SERVER__MAX_CONNECTIONS"), "{err}");
        assert!(err.contains("whole number"), "{err}");
        let err = set("GATEWAY__WHATSAPP__WEBDRIVER__HEADLESS", "maybe")
            .unwrap_err()
            .to_string();
        assert!(err.contains("true or false"), "{err}");
        assert!(
            set("GATEWAY__SERVER", "x").is_err(),
            "a section is not a value"
        );
        assert!(set("GATEWAY__SERVER____BIND", "x").is_err());
    }
}
