//! `hoop search 'QUERY'`

use std::io::IsTerminal as _;

use anyhow::Result;
use hoop_proto::v1::{SearchOrder, SearchResult, SearchSessionsRequest, Snippet};

use crate::cli::OutputFormat;
use crate::client::Api;
use crate::output::{self, printable, timestamp};

/// A snippet on one line, its matches in bold on a terminal (or between `[` `]` elsewhere).
fn snippet_line(snippet: &Snippet, bold: bool) -> String {
    let text = &snippet.fragment;
    let (open, close) = if bold {
        ("\u{1b}[1m", "\u{1b}[0m")
    } else {
        ("[", "]")
    };
    let mut out = String::new();
    let mut at = 0usize;
    for h in &snippet.highlights {
        let (start, end) = (h.start as usize, h.end as usize);
        if start < at
            || end > text.len()
            || !text.is_char_boundary(start)
            || !text.is_char_boundary(end)
        {
            continue;
        }
        out.push_str(&printable(&text[at..start], false));
        out.push_str(open);
        out.push_str(&printable(&text[start..end], false));
        out.push_str(close);
        at = end;
    }
    out.push_str(&printable(&text[at..], false));
    format!("    {:<6} {}", snippet.field, out.trim())
}

fn result_text(result: &SearchResult, bold: bool) -> String {
    let session = result.session.clone().unwrap_or_default();
    let exit = session
        .exit_code
        .map_or_else(|| "-".to_owned(), |c| c.to_string());
    let mut text = format!(
        "{id}  {user}@{conn}  {verb} {status} exit {exit}  {start}{truncated}",
        id = session.id,
        user = session.user,
        conn = session.connection,
        verb = session.verb,
        status = session.status,
        start = timestamp(session.start_time.as_ref()),
        truncated = if result.truncated {
            "  (truncated)"
        } else {
            ""
        },
    );
    for snippet in &result.snippets {
        text.push('\n');
        text.push_str(&snippet_line(snippet, bold));
    }
    text
}

pub(crate) async fn run(
    api: &mut Api,
    format: OutputFormat,
    query: String,
    relevance: bool,
    limit: i32,
    page_token: Option<String>,
) -> Result<String> {
    let response = api
        .search
        .search_sessions(SearchSessionsRequest {
            query: query.clone(),
            page_size: limit,
            page_token: page_token.clone().unwrap_or_default(),
            order_by: if relevance {
                SearchOrder::Relevance
            } else {
                SearchOrder::Newest
            } as i32,
        })
        .await?
        .into_inner();
    if matches!(format, OutputFormat::Json) {
        return output::json(&response);
    }
    let bold = std::io::stdout().is_terminal();
    let mut text: Vec<String> = response
        .results
        .iter()
        .map(|r| result_text(r, bold))
        .collect();
    let shown = response.results.len();
    let mut footer = format!(
        "{shown} of {total} matching sessions",
        total = response.total_hits
    );
    if !response.next_page_token.is_empty() {
        footer.push_str(&format!(
            "; next page: hoop search '{}'{} --page-token {}",
            query.replace('\'', r"'\''"),
            if relevance { " --relevance" } else { "" },
            response.next_page_token
        ));
    }
    text.push(footer);
    Ok(text.join("\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoop_proto::v1::Highlight;

    #[test]
    fn snippets_mark_their_matches_and_stay_printable() {
        let snippet = Snippet {
            field: "input".into(),
            fragment: "drop table orders;\u{1b}[2J".into(),
            highlights: vec![
                Highlight { start: 0, end: 4 },
                Highlight { start: 5, end: 10 },
            ],
        };
        assert_eq!(
            snippet_line(&snippet, false),
            "    input  [drop] [table] orders;\\u{1b}[2J"
        );
    }
}
