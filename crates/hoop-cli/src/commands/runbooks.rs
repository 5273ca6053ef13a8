//! `hoop runbooks list|show|run`.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use anyhow::Result;
use hoop_proto::v1::{
    GetRunbookRequest, ListRunbooksRequest, RunRunbookRequest, Runbook, RunbookParam,
};

use crate::cli::{OutputFormat, RunbooksCommand, UsageError};
use crate::client::Api;
use crate::commands::Outcome;
use crate::commands::stream::{Printer, no_exit_status, session_stdout};
use crate::output::{self, details, or_dash, table};

pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    command: RunbooksCommand,
) -> Result<Outcome> {
    match command {
        RunbooksCommand::List {
            connection,
            repository,
        } => {
            let response = api
                .runbooks
                .list_runbooks(ListRunbooksRequest {
                    connection: connection.unwrap_or_default(),
                    repository: repository.unwrap_or_default(),
                })
                .await?
                .into_inner();
            let text = match format {
                OutputFormat::Json => output::json(&response)?,
                OutputFormat::Table => list_table(&response.runbooks, &response.repositories),
            };
            Ok(Outcome::Print(text, 0))
        }
        RunbooksCommand::Show { repository, path } => {
            let runbook = api
                .runbooks
                .get_runbook(GetRunbookRequest { repository, path })
                .await?
                .into_inner();
            let text = match format {
                OutputFormat::Json => output::json(&runbook)?,
                OutputFormat::Table => show(&runbook),
            };
            Ok(Outcome::Print(text, 0))
        }
        RunbooksCommand::Run {
            connection,
            repository,
            path,
            params,
            git_ref,
        } => {
            let request = RunRunbookRequest {
                connection,
                repository,
                path,
                params: parse_params(&params)?,
                r#ref: git_ref.unwrap_or_default(),
            };
            let mut events = api.runbooks.run_runbook(request).await?.into_inner();
            let mut printer = Printer::new(format, session_stdout(), std::io::stderr())
                .with_spinner(std::io::stderr().is_terminal());
            while let Some(event) = events.message().await? {
                if let Some(status) = printer.event(&event)? {
                    return Ok(Outcome::Exit(status));
                }
            }
            Err(no_exit_status())
        }
    }
}

/// `--param NAME=VALUE`s as a map; a value may hold `=`, and a name given twice is an error.
fn parse_params(params: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            return Err(UsageError(format!(
                "--param `{param}`: write NAME=VALUE (e.g. --param order_id=42)"
            ))
            .into());
        };
        if name.is_empty() {
            return Err(UsageError(format!("--param `{param}`: the name is empty")).into());
        }
        if out.insert(name.to_owned(), value.to_owned()).is_some() {
            return Err(UsageError(format!("--param {name} is given twice")).into());
        }
    }
    Ok(out)
}

fn list_table(runbooks: &[Runbook], repositories: &[hoop_proto::v1::RunbookRepository]) -> String {
    let rows = runbooks
        .iter()
        .map(|r| {
            vec![
                r.repository.clone(),
                r.path.clone(),
                if r.error.is_empty() {
                    or_dash(&r.description)
                } else {
                    format!("ERROR: {}", output::printable(&r.error, false))
                },
                or_dash(
                    &r.params
                        .iter()
                        .map(|p| p.name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                r.commit.get(..12).unwrap_or(&r.commit).to_owned(),
            ]
        })
        .collect();
    let mut text = table(
        &["repository", "path", "description", "params", "commit"],
        rows,
    );
    for repo in repositories.iter().filter(|r| !r.error.is_empty()) {
        text.push_str(&format!(
            "\n\nrepository {}: last refresh failed ({}); runs use commit {}",
            repo.name,
            output::printable(&repo.error, false),
            or_dash(repo.commit.get(..12).unwrap_or(&repo.commit))
        ));
    }
    text
}

fn param_rule(p: &RunbookParam) -> String {
    let mut rules = vec![p.r#type.clone()];
    if p.required {
        rules.push("required".to_owned());
    }
    if p.has_default {
        rules.push(format!("default {:?}", p.default));
    }
    if !p.options.is_empty() {
        rules.push(format!("one of {}", p.options.join(", ")));
    }
    if !p.pattern.is_empty() {
        rules.push(format!("matches {}", p.pattern));
    }
    if let Some(min) = p.min_length {
        rules.push(format!("at least {min} characters"));
    }
    if let Some(max) = p.max_length {
        rules.push(format!("at most {max} characters"));
    }
    rules.join(", ")
}

fn show(r: &Runbook) -> String {
    let mut text = details(&[
        ("repository", r.repository.clone()),
        ("path", r.path.clone()),
        ("commit", r.commit.clone()),
        ("description", or_dash(&r.description)),
        ("escaping", r.escaping.clone()),
    ]);
    if !r.error.is_empty() {
        text.push_str(&format!("\nerror: {}", output::printable(&r.error, false)));
        return text;
    }
    if !r.params.is_empty() {
        let rows = r
            .params
            .iter()
            .map(|p| vec![p.name.clone(), param_rule(p), or_dash(&p.description)])
            .collect();
        text.push_str("\n\n");
        text.push_str(&table(&["param", "rule", "description"], rows));
    }
    text.push_str("\n\n");
    text.push_str(&output::printable(&r.template, true));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse_as_name_equals_value() {
        let p = parse_params(&["a=1".into(), "b=x=y".into(), "c=".into()]).unwrap();
        assert_eq!(p["a"], "1");
        assert_eq!(p["b"], "x=y");
        assert_eq!(p["c"], "");
        for bad in ["novalue", "=x"] {
            let err = parse_params(&[bad.to_owned()]).unwrap_err();
            assert!(err.downcast_ref::<UsageError>().is_some(), "{err}");
        }
        let err = parse_params(&["a=1".into(), "a=2".into()]).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
