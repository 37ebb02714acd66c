//! Who may see and do what, where: role bindings. A binding gives a user or a group a role
//! (viewer, operator, admin) within a scope: everything, or the jobs of some sources (`local`, a
//! controller's name), templates (an AAP template's name, a local job's playbook path) and
//! inventories, each a list of names or globs (`*`, `?`); an operator binding may also name the
//! stored credentials its launches may use (all, when it names none). A person's permissions are the union of
//! the bindings that name them or one of their groups; a token's are its owner's, each capped at
//! the token's own role.
//!
//! Bindings come from `PLAYDECK_ACCESS_CONFIG` (TOML, see `examples/access.toml`), from the
//! Settings page (the `role_bindings` table, read again every few seconds), and from
//! `PLAYDECK_ADMIN_GROUPS` / `_OPERATOR_GROUPS` / `_VIEWER_GROUPS`, which are bindings with the
//! scope "everything". Every handler asks [`Access`] the same two questions: may this caller act
//! on this job with this role ([`Access::allows`]), and which jobs may they see ([`Access::sql`]).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use shared::Role;

/// A name or a glob (`*` any run of characters, `?` one character).
#[derive(Debug, Clone)]
pub struct Glob {
    pub text: String,
    matcher: regex::Regex,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Glob) -> bool {
        self.text == other.text
    }
}

impl Eq for Glob {}

impl Glob {
    pub fn parse(text: &str) -> Result<Glob, String> {
        if text.is_empty() {
            return Err("an empty name matches nothing; leave the list out to mean every one".into());
        }
        if text.len() > 512 || text.chars().any(|c| c.is_control()) {
            return Err(format!("{text:?}: at most 512 characters, no control characters"));
        }
        if let Some(c) = text.chars().find(|c| matches!(c, '[' | ']' | '{' | '}')) {
            return Err(format!("{text:?}: `{c}` is not supported in a glob; use `*` and `?`"));
        }
        let mut re = String::from("^");
        for c in text.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        let matcher = regex::Regex::new(&re).map_err(|e| format!("{text:?}: {e}"))?;
        Ok(Glob { text: text.to_string(), matcher })
    }

    pub fn matches(&self, value: &str) -> bool {
        self.matcher.is_match(value)
    }

    /// The same pattern for SQL's `like` (with `\` as the escape character).
    fn like(&self) -> String {
        let mut out = String::new();
        for c in self.text.chars() {
            match c {
                '*' => out.push('%'),
                '?' => out.push('_'),
                '%' | '_' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        out
    }
}

/// Which jobs a binding covers: every dimension given must match (a job of one of the sources,
/// and one of the templates, and one of the inventories); a dimension left out matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub sources: Vec<String>,
    pub templates: Vec<Glob>,
    pub inventories: Vec<Glob>,
    /// The stored credentials launches under this binding may use (empty: every one). Not part of
    /// which jobs it covers.
    pub credentials: Vec<Glob>,
}

/// What a scope is checked against: a job, or a launch about to make one.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub source: &'a str,
    pub template: Option<&'a str>,
    pub inventory: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub fn of(job: &'a shared::Job) -> Target<'a> {
        Target { source: &job.source, template: job.template.as_deref(), inventory: job.inventory.as_deref() }
    }
}

impl Scope {
    /// Whether it covers every job (whatever credentials it allows).
    pub fn everything(&self) -> bool {
        self.sources.is_empty() && self.templates.is_empty() && self.inventories.is_empty()
    }

    fn allows_credential(&self, name: &str) -> bool {
        self.credentials.is_empty() || self.credentials.iter().any(|g| g.matches(name))
    }

    pub fn covers(&self, t: &Target<'_>) -> bool {
        self.covers_as(t, false)
    }

    /// `covers`, where a dimension the target leaves out (`None`) matches anything when
    /// `open` (a playbook the caller may launch on some inventory).
    fn covers_as(&self, t: &Target<'_>, open: bool) -> bool {
        let any = |globs: &[Glob], v: Option<&str>| {
            globs.is_empty()
                || match v {
                    Some(v) => globs.iter().any(|g| g.matches(v)),
                    None => open,
                }
        };
        (self.sources.is_empty() || self.sources.iter().any(|s| s == t.source))
            && any(&self.templates, t.template)
            && any(&self.inventories, t.inventory)
    }

    /// The scope as a SQL condition on a jobs table aliased `prefix` (`""` or `"j."`).
    fn sql(&self, prefix: &str) -> String {
        let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let mut conds = Vec::new();
        if !self.sources.is_empty() {
            let list: Vec<String> = self.sources.iter().map(|s| lit(s)).collect();
            conds.push(format!("{prefix}source in ({})", list.join(", ")));
        }
        for (col, globs) in [("template", &self.templates), ("inventory", &self.inventories)] {
            if globs.is_empty() {
                continue;
            }
            // Plain names compare as names (cheaper, and an index can serve them); globs as `like`.
            let (plain, wild): (Vec<&Glob>, Vec<&Glob>) =
                globs.iter().partition(|g| !g.text.contains(['*', '?']));
            let mut any = Vec::new();
            if !plain.is_empty() {
                let list: Vec<String> = plain.iter().map(|g| lit(&g.text)).collect();
                any.push(format!("{prefix}{col} in ({})", list.join(", ")));
            }
            if !wild.is_empty() {
                let list: Vec<String> = wild.iter().map(|g| lit(&g.like())).collect();
                any.push(format!("{prefix}{col} like any (array[{}])", list.join(", ")));
            }
            conds.push(if any.len() == 1 { any.remove(0) } else { format!("({})", any.join(" or ")) });
        }
        if conds.is_empty() {
            "true".into()
        } else {
            format!("({})", conds.join(" and "))
        }
    }
}

/// Whom a binding names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
}

impl Subject {
    /// Whether this subject names the person: their user name (any case), or one of their
    /// groups exactly or, for a DN (`cn=ops,ou=groups,…`), by its first value.
    fn names(&self, username: &str, groups: &[String]) -> bool {
        match self {
            Subject::User(u) => u.eq_ignore_ascii_case(username),
            Subject::Group(n) => groups.iter().any(|g| {
                let short = g
                    .split_once('=')
                    .filter(|_| g.contains(','))
                    .map(|(_, rest)| rest.split(',').next().unwrap_or(rest).trim());
                n.eq_ignore_ascii_case(g) || short.is_some_and(|s| n.eq_ignore_ascii_case(s))
            }),
        }
    }
}

/// One role binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The `role_bindings` row, for those made on the Settings page.
    pub id: Option<i64>,
    /// Where it comes from: `settings`, `PLAYDECK_ACCESS_CONFIG (line N)`, `PLAYDECK_ADMIN_GROUPS`.
    pub origin: String,
    pub subject: Subject,
    pub role: Role,
    pub scope: Scope,
}

/// A caller's permissions: (role, scope) grants, already capped by the token used.
#[derive(Debug, Clone, Default)]
pub struct Access {
    grants: Arc<Vec<(Role, Arc<Scope>)>>,
}

impl PartialEq for Access {
    fn eq(&self, other: &Access) -> bool {
        self.grants == other.grants
    }
}

impl Access {
    /// Every job, with this role.
    pub fn everywhere(role: Role) -> Access {
        Access { grants: Arc::new(vec![(role, Arc::new(Scope::default()))]) }
    }

    /// A person's or service account's access from the bindings that name them, plus a role over
    /// everything they have of their own (a service account's), capped at `cap` (the token's role).
    pub fn of(
        bindings: &[Binding],
        username: &str,
        groups: &[String],
        own: Option<Role>,
        cap: Option<Role>,
    ) -> Access {
        let mut grants: Vec<(Role, Arc<Scope>)> = Vec::new();
        if let Some(role) = own {
            grants.push((role, Arc::new(Scope::default())));
        }
        for b in bindings.iter().filter(|b| b.subject.names(username, groups)) {
            grants.push((b.role, Arc::new(b.scope.clone())));
        }
        if let Some(cap) = cap {
            for g in &mut grants {
                g.0 = g.0.min(cap);
            }
        }
        // A grant another covers adds nothing (same or wider scope with at least its role).
        let mut kept: Vec<(Role, Arc<Scope>)> = Vec::new();
        for g in grants {
            // (Only when it allows at least the same credentials: none named means all.)
            let wider = |a: &Scope, b: &Scope| {
                (a.everything() || a == b) && (a.credentials.is_empty() || a.credentials == b.credentials)
            };
            let covered = kept.iter().any(|k| k.0 >= g.0 && wider(&k.1, &g.1));
            if !covered {
                kept.retain(|k| !(g.0 >= k.0 && wider(&g.1, &k.1)));
                kept.push(g);
            }
        }
        Access { grants: Arc::new(kept) }
    }

    /// The highest role anywhere: what `Caller::role` says and `require` checks first.
    pub fn max_role(&self) -> Option<Role> {
        self.grants.iter().map(|g| g.0).max()
    }

    /// Whether `role` is held over everything (admin pages such as keys, people and the audit
    /// log need it: they are not about some jobs).
    pub fn everywhere_as(&self, role: Role) -> bool {
        self.grants.iter().any(|(r, s)| *r >= role && s.everything())
    }

    /// Whether the caller may act on this job (or launch this) with `role`.
    pub fn allows(&self, role: Role, target: &Target<'_>) -> bool {
        self.grants.iter().any(|(r, s)| *r >= role && s.covers(target))
    }

    /// Whether some launch that matches `target` in what it names (a template, or an inventory,
    /// or both) is allowed with `role`: what the launch form lists (a playbook the caller may run
    /// on some inventory, an inventory some playbook of theirs may run on).
    pub fn allows_some(&self, role: Role, target: &Target<'_>) -> bool {
        self.grants.iter().any(|(r, s)| *r >= role && s.covers_as(target, true))
    }

    /// Whether a launch of `target` may use the stored credential `name`: an operator grant
    /// covers the launch and allows that credential.
    pub fn may_use_credential(&self, target: &Target<'_>, name: &str) -> bool {
        self.grants.iter().any(|(r, s)| *r >= Role::Operator && s.covers(target) && s.allows_credential(name))
    }

    /// Whether the stored credential `name` may be used in some launch (the credential list an
    /// operator sees).
    pub fn may_use_credential_somewhere(&self, name: &str) -> bool {
        self.grants.iter().any(|(r, s)| *r >= Role::Operator && s.allows_credential(name))
    }

    /// The jobs the caller may see with `role`, as a SQL condition on a jobs table aliased
    /// `prefix` (`""` or `"j."`); `None` when that is every job.
    pub fn sql(&self, role: Role, prefix: &str) -> Option<String> {
        let scopes: Vec<&Scope> =
            self.grants.iter().filter(|(r, _)| *r >= role).map(|(_, s)| s.as_ref()).collect();
        if scopes.iter().any(|s| s.everything()) {
            return None;
        }
        if scopes.is_empty() {
            return Some("false".into());
        }
        Some(format!("({})", scopes.iter().map(|s| s.sql(prefix)).collect::<Vec<_>>().join(" or ")))
    }

    /// [`Access::sql`] as a condition to append (`" and …"`, or nothing).
    pub fn and_sql(&self, role: Role, prefix: &str) -> String {
        self.sql(role, prefix).map(|c| format!(" and {c}")).unwrap_or_default()
    }
}

/// The settings' and the file's bindings, and the Settings page's, read again from the database
/// when they are older than [`Bindings::FRESH`] (so a change on another replica, or a binding
/// removed, counts within seconds everywhere).
pub struct Bindings {
    fixed: Vec<Binding>,
    stored: RwLock<(Option<Instant>, Arc<Vec<Binding>>)>,
}

impl Bindings {
    pub const FRESH: Duration = Duration::from_secs(5);

    pub fn new(fixed: Vec<Binding>) -> Bindings {
        Bindings { fixed, stored: RwLock::new((None, Arc::new(Vec::new()))) }
    }

    pub fn fixed(&self) -> &[Binding] {
        &self.fixed
    }

    /// Drops the cached Settings bindings: the next request reads them again.
    pub fn changed(&self) {
        self.stored.write().unwrap_or_else(|p| p.into_inner()).0 = None;
    }

    /// Every binding in force.
    pub async fn all(
        &self,
        pool: &deadpool_postgres::Pool,
    ) -> Result<Vec<Binding>, crate::infra::error::AppError> {
        let stored = {
            let cached = self.stored.read().unwrap_or_else(|p| p.into_inner());
            match cached.0 {
                Some(at) if at.elapsed() < Self::FRESH => Some(cached.1.clone()),
                _ => None,
            }
        };
        let stored = match stored {
            Some(s) => s,
            None => {
                let fresh = Arc::new(read_stored(pool).await?);
                *self.stored.write().unwrap_or_else(|p| p.into_inner()) =
                    (Some(Instant::now()), fresh.clone());
                fresh
            }
        };
        let mut all = self.fixed.clone();
        all.extend(stored.iter().cloned());
        Ok(all)
    }
}

async fn read_stored(pool: &deadpool_postgres::Pool) -> Result<Vec<Binding>, crate::infra::error::AppError> {
    let db = pool.get().await?;
    let rows = db
        .query(
            "select id, subject_kind, subject, role, sources, templates, inventories, credentials
               from role_bindings order by id",
            &[],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let id: i64 = r.get(0);
        let subject =
            if r.get::<_, &str>(1) == "group" { Subject::Group(r.get(2)) } else { Subject::User(r.get(2)) };
        let Some(role) = Role::parse(r.get(3)) else { continue };
        let globs = |v: Vec<String>| v.iter().filter_map(|g| Glob::parse(g).ok()).collect::<Vec<_>>();
        out.push(Binding {
            id: Some(id),
            origin: "settings".into(),
            subject,
            role,
            scope: Scope {
                sources: r.get(4),
                templates: globs(r.get(5)),
                inventories: globs(r.get(6)),
                credentials: globs(r.get(7)),
            },
        });
    }
    Ok(out)
}

/// The bindings `PLAYDECK_*_GROUPS` make: each group, its role, over everything.
pub fn from_group_settings(admin: &[String], operator: &[String], viewer: &[String]) -> Vec<Binding> {
    let mut out = Vec::new();
    for (role, groups, origin) in [
        (Role::Admin, admin, "PLAYDECK_ADMIN_GROUPS"),
        (Role::Operator, operator, "PLAYDECK_OPERATOR_GROUPS"),
        (Role::Viewer, viewer, "PLAYDECK_VIEWER_GROUPS"),
    ] {
        for g in groups {
            out.push(Binding {
                id: None,
                origin: origin.into(),
                subject: Subject::Group(g.clone()),
                role,
                scope: Scope::default(),
            });
        }
    }
    out
}

/// One `[[binding]]` of the access file, as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBinding {
    user: Option<toml::Spanned<String>>,
    group: Option<toml::Spanned<String>>,
    role: toml::Spanned<String>,
    #[serde(default)]
    sources: Vec<toml::Spanned<String>>,
    #[serde(default)]
    templates: Vec<toml::Spanned<String>>,
    #[serde(default)]
    inventories: Vec<toml::Spanned<String>>,
    #[serde(default)]
    credentials: Vec<toml::Spanned<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    binding: Vec<toml::Spanned<FileBinding>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Reads an access file: `path` names it in errors (with the line and the reason).
pub fn parse_file(path: &str, text: &str) -> Result<Vec<Binding>, String> {
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| format!(" line {}", line_of(text, s.start))).unwrap_or_default();
        format!("{path}{line}: {}", e.message())
    })?;
    let mut out = Vec::new();
    for b in file.binding {
        let at = |span: std::ops::Range<usize>| format!("{path} line {}", line_of(text, span.start));
        let here = at(b.span());
        let b = b.into_inner();
        let subject = match (b.user, b.group) {
            (Some(u), None) if !u.get_ref().trim().is_empty() => {
                Subject::User(u.into_inner().trim().to_string())
            }
            (None, Some(g)) if !g.get_ref().trim().is_empty() => {
                Subject::Group(g.into_inner().trim().to_string())
            }
            (Some(_), Some(_)) => {
                return Err(format!("{here}: a binding names a `user` or a `group`, not both"))
            }
            _ => return Err(format!("{here}: a binding needs a non-empty `user` or `group`")),
        };
        let role = Role::parse(b.role.get_ref()).ok_or_else(|| {
            format!(
                "{}: unknown role {:?}; use viewer, operator or admin",
                at(b.role.span()),
                b.role.get_ref()
            )
        })?;
        let globs = |list: Vec<toml::Spanned<String>>, what: &str| -> Result<Vec<Glob>, String> {
            list.into_iter()
                .map(|g| Glob::parse(g.get_ref()).map_err(|e| format!("{}: `{what}`: {e}", at(g.span()))))
                .collect()
        };
        let mut sources = Vec::new();
        for s in b.sources {
            if s.get_ref().trim().is_empty() {
                return Err(format!("{}: `sources`: an empty name", at(s.span())));
            }
            sources.push(s.into_inner());
        }
        let scope = Scope {
            sources,
            templates: globs(b.templates, "templates")?,
            inventories: globs(b.inventories, "inventories")?,
            credentials: globs(b.credentials, "credentials")?,
        };
        out.push(Binding { id: None, origin: format!("{here}"), subject, role, scope });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<'a>(source: &'a str, template: &'a str, inventory: &'a str) -> Target<'a> {
        Target { source, template: Some(template), inventory: Some(inventory) }
    }

    #[test]
    fn a_file_reads_into_bindings_and_mistakes_name_the_line() {
        let text = "# teams\n[[binding]]\ngroup = \"patch-team\"\nrole = \"operator\"\ntemplates = [\"patch-*.yml\", \"Patch ?\"]\n\n[[binding]]\nuser = \"alice\"\nrole = \"viewer\"\n";
        let b = parse_file("access.toml", text).expect("parses");
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].subject, Subject::Group("patch-team".into()));
        assert_eq!(b[0].origin, "access.toml line 2");
        assert!(b[0].scope.covers(&job("local", "patch-web.yml", "prod")));
        assert!(b[0].scope.covers(&job("aap", "Patch 1", "x")));
        assert!(!b[0].scope.covers(&job("local", "deploy.yml", "prod")));
        for (bad, says) in [
            ("[[binding]]\ngroup = \"g\"\nrole = \"boss\"\n", "line 3: unknown role \"boss\""),
            (
                "[[binding]]\ngroup = \"g\"\nrole = \"viewer\"\ntemplates = [\"a[b]\"]\n",
                "line 4: `templates`: \"a[b]\": `[` is not supported",
            ),
            ("[[binding]]\ngroup = \"g\"\nrole = \"viewer\"\ncolour = \"red\"\n", "line 4"),
            ("[[binding]]\nrole = \"viewer\"\n", "line 1: a binding needs"),
            ("[[binding]]\nuser = \"a\"\ngroup = \"g\"\nrole = \"viewer\"\n", "not both"),
            ("[[bindings]]\n", "line 1"),
        ] {
            let e = parse_file("access.toml", bad).expect_err(bad);
            assert!(e.starts_with("access.toml") && e.contains(says), "{bad:?} → {e}");
        }
    }

    #[test]
    fn access_is_the_union_of_bindings_capped_by_the_token() {
        let bindings = parse_file(
            "f",
            "[[binding]]\ngroup = \"patch\"\nrole = \"operator\"\ntemplates = [\"patch*\"]\n[[binding]]\ngroup = \"cn=all,ou=g,dc=x\"\nrole = \"viewer\"\n",
        )
        .expect("parses");
        let groups = vec!["patch".to_string(), "cn=all,ou=g,dc=x".to_string()];
        let a = Access::of(&bindings, "ann", &groups, None, None);
        assert_eq!(a.max_role(), Some(Role::Operator));
        assert!(a.allows(Role::Operator, &job("local", "patch.yml", "i")));
        assert!(!a.allows(Role::Operator, &job("local", "deploy.yml", "i")));
        assert!(
            a.allows(Role::Viewer, &job("local", "deploy.yml", "i")),
            "the viewer binding covers everything"
        );
        assert_eq!(a.sql(Role::Viewer, ""), None);
        assert_eq!(a.sql(Role::Operator, "j.").as_deref(), Some("((j.template like any (array['patch%'])))"));
        let capped = Access::of(&bindings, "ann", &groups, None, Some(Role::Viewer));
        assert_eq!(capped.max_role(), Some(Role::Viewer));
        assert!(!capped.allows(Role::Operator, &job("local", "patch.yml", "i")));
        let nobody = Access::of(&bindings, "bob", &[], None, None);
        assert_eq!(nobody.max_role(), None);
        assert_eq!(nobody.sql(Role::Viewer, "").as_deref(), Some("false"));
    }

    #[test]
    fn the_example_file_reads() {
        let text = include_str!("../../../examples/access.toml");
        let b = parse_file("examples/access.toml", text).expect("the example parses");
        assert_eq!(b.len(), 5);
        let web = Access::of(&b, "wes", &["web-team".to_string()], None, None);
        assert!(web.allows(Role::Operator, &job("local", "deploy-shop.yml", "web-prod")));
        assert!(!web.allows(Role::Operator, &job("local", "deploy-shop.yml", "db-prod")));
    }

    #[test]
    fn the_demo_teams_read() {
        let text = include_str!("../../../examples/demo-access.toml");
        let b = parse_file("examples/demo-access.toml", text).expect("the demo's file parses");
        let alice = Access::of(&b, "alice", &["playdeck-admins".to_string()], None, None);
        assert!(alice.allows(Role::Operator, &job("local", "patch.yml", "demo.yml")));
        assert!(!alice.allows(Role::Viewer, &job("local", "retire-vm.yml", "demo.yml")));
        assert_eq!(alice.max_role(), Some(Role::Operator), "groups grant nothing in the demo");
    }

    #[test]
    fn globs_become_safe_like_patterns() {
        let g = Glob::parse("it's_50%*").expect("glob");
        assert_eq!(g.like(), "it's\\_50\\%%");
        let s = Scope {
            sources: vec!["o'brien".into()],
            templates: vec![g, Glob::parse("deploy.yml").expect("glob")],
            inventories: vec![],
            credentials: vec![],
        };
        assert_eq!(
            s.sql(""),
            "(source in ('o''brien') and (template in ('deploy.yml') or template like any (array['it''s\\_50\\%%'])))"
        );
        assert!(Glob::parse("").is_err());
    }
}
