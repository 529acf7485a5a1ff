//! templates: `{{name}}` placeholders filled from the request's variables.
//!
//! Config (optional): `missing = "error"` (the default: a missing variable is an error naming
//! it), `"empty"` (it becomes ""), or `"keep"` (the placeholder stays as written).

wit_bindgen::generate!({ world: "message-templater", path: "../../wit" });

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Error,
    Empty,
    Keep,
}

impl Missing {
    pub fn from_config(value: Option<String>) -> Result<Missing, String> {
        match value.as_deref().map(str::trim) {
            None | Some("error") => Ok(Missing::Error),
            Some("empty") => Ok(Missing::Empty),
            Some("keep") => Ok(Missing::Keep),
            Some(other) => Err(format!(
                "config missing = {other:?}: use error, empty or keep"
            )),
        }
    }
}

pub fn render(
    template: &str,
    variables: &[(String, String)],
    missing: Missing,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("unclosed `{{` in the template".into());
        };
        let name = after[..end].trim();
        match variables.iter().find(|(k, _)| k == name) {
            Some((_, v)) => out.push_str(v),
            None => match missing {
                Missing::Error => return Err(format!("missing variable `{name}`")),
                Missing::Empty => {}
                Missing::Keep => out.push_str(&rest[start..start + 2 + end + 2]),
            },
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

struct Plugin;

impl Guest for Plugin {
    fn render(template: String, variables: Vec<(String, String)>) -> Result<String, String> {
        let missing = Missing::from_config(wa_gateway::plugin::host::config("missing"))?;
        render(&template, &variables, missing)
    }
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![
            ("name".into(), "Ani".into()),
            ("code".into(), "4821".into()),
        ]
    }

    #[test]
    fn fills_placeholders_with_or_without_spaces() {
        assert_eq!(
            render("Hi {{name}}, code {{ code }}!", &vars(), Missing::Error).unwrap(),
            "Hi Ani, code 4821!"
        );
        assert_eq!(
            render("no placeholders", &vars(), Missing::Error).unwrap(),
            "no placeholders"
        );
    }

    #[test]
    fn a_missing_variable_is_named_or_handled_as_configured() {
        assert_eq!(
            render("Hi {{who}}", &vars(), Missing::Error).unwrap_err(),
            "missing variable `who`"
        );
        assert_eq!(
            render("Hi {{who}}.", &vars(), Missing::Empty).unwrap(),
            "Hi ."
        );
        assert_eq!(
            render("Hi {{ who }}.", &vars(), Missing::Keep).unwrap(),
            "Hi {{ who }}."
        );
        assert!(render("Hi {{name", &vars(), Missing::Error).is_err());
        assert!(Missing::from_config(Some("drop".into())).is_err());
    }
}
