//! The little Markdown a knowledge base solution uses, rendered as yew nodes: paragraphs, `*`/`-`
//! lists, fenced code blocks, `code` and **bold**. Everything else shows as the text it is: no
//! HTML from the entry ever reaches the page as HTML.

use yew::prelude::*;

/// A block of a solution.
#[derive(Debug, PartialEq)]
enum Block {
    Para(String),
    List(Vec<String>),
    Code(String),
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut para: Vec<&str> = Vec::new();
    let mut items: Vec<String> = Vec::new();
    let mut code: Option<Vec<&str>> = None;
    let flush = |para: &mut Vec<&str>, items: &mut Vec<String>, out: &mut Vec<Block>| {
        if !para.is_empty() {
            out.push(Block::Para(para.join(" ")));
            para.clear();
        }
        if !items.is_empty() {
            out.push(Block::List(std::mem::take(items)));
        }
    };
    for line in text.lines() {
        if let Some(lines) = code.as_mut() {
            if line.trim_start().starts_with("```") {
                out.push(Block::Code(lines.join("\n")));
                code = None;
            } else {
                lines.push(line);
            }
            continue;
        }
        let t = line.trim();
        if t.starts_with("```") {
            flush(&mut para, &mut items, &mut out);
            code = Some(Vec::new());
        } else if t.is_empty() {
            flush(&mut para, &mut items, &mut out);
        } else if let Some(item) = t.strip_prefix("* ").or_else(|| t.strip_prefix("- ")) {
            if !para.is_empty() {
                out.push(Block::Para(para.join(" ")));
                para.clear();
            }
            items.push(item.trim().to_owned());
        } else if !items.is_empty() && line.starts_with("  ") {
            // A list item's continuation line.
            if let Some(last) = items.last_mut() {
                last.push(' ');
                last.push_str(t);
            }
        } else {
            if !items.is_empty() {
                out.push(Block::List(std::mem::take(&mut items)));
            }
            para.push(t);
        }
    }
    if let Some(lines) = code {
        out.push(Block::Code(lines.join("\n")));
    }
    flush(&mut para, &mut items, &mut out);
    out
}

/// Inline pieces: text, `code` and **bold**.
#[derive(Debug, PartialEq)]
enum Inline {
    Text(String),
    Code(String),
    Bold(String),
}

fn inlines(text: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let code = rest.find('`');
        let bold = rest.find("**");
        let next = match (code, bold) {
            (Some(c), Some(b)) => Some(if c < b { (c, "`") } else { (b, "**") }),
            (Some(c), None) => Some((c, "`")),
            (None, Some(b)) => Some((b, "**")),
            (None, None) => None,
        };
        let Some((at, mark)) = next else {
            out.push(Inline::Text(rest.to_owned()));
            break;
        };
        let after = &rest[at + mark.len()..];
        match after.find(mark) {
            Some(end) if end > 0 => {
                if at > 0 {
                    out.push(Inline::Text(rest[..at].to_owned()));
                }
                let inner = after[..end].to_owned();
                out.push(if mark == "`" { Inline::Code(inner) } else { Inline::Bold(inner) });
                rest = &after[end + mark.len()..];
            }
            _ => {
                // An unpaired mark is text.
                out.push(Inline::Text(rest[..at + mark.len()].to_owned()));
                rest = after;
            }
        }
    }
    out
}

fn inline_html(text: &str) -> Html {
    inlines(text)
        .into_iter()
        .map(|i| match i {
            Inline::Text(t) => html! { { t } },
            Inline::Code(t) => html! { <code>{ t }</code> },
            Inline::Bold(t) => html! { <strong>{ t }</strong> },
        })
        .collect()
}

/// The solution as nodes (text is always text: yew escapes it).
pub fn markdown(text: &str) -> Html {
    let nodes = blocks(text).into_iter().map(|b| match b {
        Block::Para(p) => html! { <p>{ inline_html(&p) }</p> },
        Block::List(items) => {
            html! { <ul>{ for items.iter().map(|i| html! { <li>{ inline_html(i) }</li> }) }</ul> }
        }
        Block::Code(c) => html! { <pre class="block">{ c }</pre> },
    });
    html! { <div class="md">{ for nodes }</div> }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_inlines() {
        let b = blocks("First line\nsame para.\n\n* one\n- two `x`\n\n```\n<b>raw</b>\n```\nlast");
        assert_eq!(
            b,
            vec![
                Block::Para("First line same para.".into()),
                Block::List(vec!["one".into(), "two `x`".into()]),
                Block::Code("<b>raw</b>".into()),
                Block::Para("last".into()),
            ]
        );
        assert_eq!(
            inlines("run `df -h` then **free** space <script>"),
            vec![
                Inline::Text("run ".into()),
                Inline::Code("df -h".into()),
                Inline::Text(" then ".into()),
                Inline::Bold("free".into()),
                Inline::Text(" space <script>".into()),
            ]
        );
        assert_eq!(inlines("a ` b"), vec![Inline::Text("a `".into()), Inline::Text(" b".into())]);
    }
}
