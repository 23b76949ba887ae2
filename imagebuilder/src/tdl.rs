//! Oz/ImageFactory TDL (Template Description Language): typed model, validator, writer.
//!
//! [`parse`] checks a document against the rules of Oz's RelaxNG schema (`tdl.rng`, formats.md §1.1)
//! and Oz's extra semantic rules from `oz/TDL.py` (formats.md §1.2) and returns a [`Template`]; every
//! violation is reported with its element path (`/template/os/install`) and line:column. Malformed
//! XML is reported with line:column. [`Template::to_xml`] writes a template back out.
//!
//! The model derives serde so that `tdl validate --json` and other tools can consume it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A TDL document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// The `version` attribute (`1.0` when present).
    pub version: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub os: Os,
    #[serde(default)]
    pub packages: Vec<Package>,
    #[serde(default)]
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub commands: Vec<CommandEntry>,
    #[serde(default)]
    pub precommands: Vec<CommandEntry>,
    #[serde(default)]
    pub repositories: Vec<Repository>,
    /// `<disk><size>` as written (see [`disk_size_bytes`]).
    pub disk_size: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Os {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub install: Install,
    pub rootpw: Option<String>,
    pub key: Option<String>,
    pub kernelparam: Option<String>,
    /// `<icicle><extra_command>`.
    pub icicle_extra_command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Install {
    Url {
        url: String,
    },
    Iso {
        iso: String,
        checksum: Option<Checksum>,
        #[serde(default)]
        extras: Vec<Extra>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checksum {
    /// `md5sum`, `sha1sum` or `sha256sum`.
    pub kind: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extra {
    /// `directory` or `file`.
    pub kind: String,
    pub source: String,
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub repository: Option<String>,
    pub file: Option<String>,
    pub arguments: Option<String>,
}

/// Content type of a `<file>` or `<command>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    Raw,
    Base64,
    Url,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub content_type: ContentType,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandEntry {
    pub name: String,
    pub position: Option<u32>,
    pub content_type: ContentType,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repository {
    pub name: String,
    pub url: String,
    pub signed: bool,
    pub persisted: bool,
    pub sslverify: bool,
}

/// One validation error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdlError {
    /// Element path, e.g. `/template/os/install`; empty for malformed XML.
    pub path: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for TdlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.line, self.column, self.path, self.message
            )
        }
    }
}

/// All errors found in one document (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TdlErrors(pub Vec<TdlError>);

impl fmt::Display for TdlErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

const ARCHES: &[&str] = &[
    "i386", "x86_64", "ppc64", "ppc64le", "aarch64", "armv7l", "s390x",
];

/// Largest TDL file the CLI reads (16 MiB): TDLs are a few KiB, but `<file>`s can be inline.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Deepest element nesting [`parse`] accepts (a TDL nests 5 levels). The XML parser recurses per
/// level, so deeper documents are refused before it runs.
pub const MAX_DEPTH: usize = 64;

/// Most markup items (elements, comments, processing instructions, CDATA sections) [`parse`]
/// accepts.
pub const MAX_NODES: usize = 100_000;

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let col = before[line_start..].chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

/// Checks nesting depth and size of the markup without recursion (the XML parser recurses per
/// element level and would overflow the stack on a deep document). Malformed markup is left to the
/// XML parser; this scan only has to count well-formed documents exactly.
fn check_shape(text: &str) -> Result<(), TdlError> {
    let b = text.as_bytes();
    let find = |pat: &[u8], from: usize| -> usize {
        let from = from.min(b.len());
        b[from..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map_or(b.len(), |p| from + p + pat.len())
    };
    let fail = |offset: usize, message: String| {
        let (line, column) = line_col(text, offset);
        TdlError {
            path: String::new(),
            line,
            column,
            message,
        }
    };
    let (mut depth, mut items, mut i) = (0usize, 0usize, 0usize);
    while let Some(off) = b[i..].iter().position(|&c| c == b'<') {
        let start = i + off;
        let rest = &b[start..];
        if rest.starts_with(b"<!--") {
            i = find(b"-->", start + 4);
        } else if rest.starts_with(b"<![CDATA[") {
            i = find(b"]]>", start + 9);
        } else if rest.starts_with(b"<?") {
            i = find(b"?>", start + 2);
        } else if rest.starts_with(b"<!") {
            // DOCTYPE: the XML parser refuses DTDs
            i = find(b">", start + 2);
            continue;
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i = find(b">", start + 2);
            continue;
        } else {
            // a start tag, up to its `>` (quoted attribute values may hold one)
            let mut j = start + 1;
            let mut quote = None;
            while j < b.len() {
                match (quote, b[j]) {
                    (None, b'"' | b'\'') => quote = Some(b[j]),
                    (Some(q), c) if c == q => quote = None,
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            if !(j < b.len() && b[j - 1] == b'/') {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(fail(
                        start,
                        format!("elements nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
            }
            i = (j + 1).min(b.len());
        }
        items += 1;
        if items > MAX_NODES {
            return Err(fail(
                start,
                format!("more than {MAX_NODES} elements, comments and processing instructions"),
            ));
        }
    }
    Ok(())
}

/// Parses and validates a TDL document. Documents nested deeper than [`MAX_DEPTH`] or with more
/// than [`MAX_NODES`] markup items are refused with the line:column where the limit was passed.
pub fn parse(text: &str) -> Result<Template, TdlErrors> {
    check_shape(text).map_err(|e| TdlErrors(vec![e]))?;
    let opts = roxmltree::ParsingOptions {
        // a backstop: text nodes sit between markup items
        nodes_limit: u32::try_from(2 * MAX_NODES + 2).unwrap_or(u32::MAX),
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts).map_err(|e| {
        let pos = e.pos();
        TdlErrors(vec![TdlError {
            path: String::new(),
            line: pos.row,
            column: pos.col,
            message: format!("malformed XML: {e}"),
        }])
    })?;
    let mut v = Validator {
        doc: &doc,
        errors: Vec::new(),
    };
    let template = v.template(doc.root_element());
    match template {
        Some(t) if v.errors.is_empty() => Ok(t),
        _ => {
            if v.errors.is_empty() {
                v.errors.push(TdlError {
                    path: "/".into(),
                    line: 1,
                    column: 1,
                    message: "invalid template".into(),
                });
            }
            Err(TdlErrors(v.errors))
        }
    }
}

type Node<'a, 'i> = roxmltree::Node<'a, 'i>;

struct Validator<'a, 'i> {
    doc: &'a roxmltree::Document<'i>,
    errors: Vec<TdlError>,
}

fn path_of(node: Node) -> String {
    let mut parts: Vec<String> = node
        .ancestors()
        .filter(|n| n.is_element())
        .map(|n| {
            let name = n.tag_name().name().to_string();
            match n.attribute("name") {
                Some(attr)
                    if matches!(name.as_str(), "package" | "file" | "command" | "repository") =>
                {
                    format!("{name}[@name='{attr}']")
                }
                _ => name,
            }
        })
        .collect();
    parts.reverse();
    format!("/{}", parts.join("/"))
}

impl<'i> Validator<'_, 'i> {
    fn err(&mut self, node: Node, message: impl Into<String>) {
        let pos = self.doc.text_pos_at(node.range().start);
        self.errors.push(TdlError {
            path: path_of(node),
            line: pos.row,
            column: pos.col,
            message: message.into(),
        });
    }

    /// Checks that `node` has only the attributes in `allowed`.
    fn attrs(&mut self, node: Node, allowed: &[&str]) {
        for a in node.attributes() {
            if a.namespace().is_some() || !allowed.contains(&a.name()) {
                self.err(
                    node,
                    format!("attribute `{}` is not allowed here", a.name()),
                );
            }
        }
    }

    /// The element children of `node`; non-blank text between them is reported.
    fn element_children<'n>(&mut self, node: Node<'n, 'i>) -> Vec<Node<'n, 'i>> {
        let mut out = Vec::new();
        for c in node.children() {
            if c.is_text() {
                if !c.text().unwrap_or("").trim().is_empty() {
                    self.err(node, "text is not allowed here, only elements");
                }
            } else if c.is_element() {
                out.push(c);
            }
        }
        out
    }

    /// Element children, each allowed at most once; reports unknown, repeated and text children.
    fn children<'n>(
        &mut self,
        node: Node<'n, 'i>,
        allowed: &[&str],
    ) -> Vec<(String, Node<'n, 'i>)> {
        let mut seen: Vec<(String, Node<'n, 'i>)> = Vec::new();
        for c in self.element_children(node) {
            let name = c.tag_name().name();
            if c.tag_name().namespace().is_some() || !allowed.contains(&name) {
                self.err(c, format!("element `{name}` is not allowed here"));
                continue;
            }
            if seen.iter().any(|(n, _)| n == name) {
                self.err(c, format!("element `{name}` may appear only once"));
                continue;
            }
            seen.push((name.to_string(), c));
        }
        seen
    }

    /// Text content of an element that must not contain child elements.
    fn text(&mut self, node: Node<'_, 'i>) -> String {
        if node.children().any(|c| c.is_element()) {
            self.err(node, "only text is allowed here, not child elements");
        }
        node.children()
            .filter(|c| c.is_text())
            .filter_map(|c| c.text())
            .collect()
    }

    /// Text of a pure text element (no attributes allowed).
    fn leaf(&mut self, node: Node<'_, 'i>) -> String {
        self.attrs(node, &[]);
        self.text(node)
    }

    fn required<'n>(
        &mut self,
        parent: Node,
        kids: &[(String, Node<'n, 'i>)],
        name: &str,
    ) -> Option<Node<'n, 'i>> {
        let found = get(kids, name);
        if found.is_none() {
            self.err(parent, format!("missing required element `{name}`"));
        }
        found
    }

    fn template(&mut self, root: Node<'_, 'i>) -> Option<Template> {
        if root.tag_name().name() != "template" || root.tag_name().namespace().is_some() {
            self.err(
                root,
                format!(
                    "root element must be `template`, not `{}`",
                    root.tag_name().name()
                ),
            );
            return None;
        }
        self.attrs(root, &["version"]);
        let version = root.attribute("version").map(str::to_string);
        if let Some(v) = &version {
            // Schema: only `1.0`; Oz: float(version) <= 1.0.
            if v.trim() != "1.0" {
                self.err(root, format!("version attribute must be `1.0`, not `{v}`"));
            }
        }
        let kids = self.children(
            root,
            &[
                "name",
                "os",
                "description",
                "packages",
                "files",
                "commands",
                "precommands",
                "repositories",
                "disk",
            ],
        );
        let name = self.required(root, &kids, "name").map(|n| self.leaf(n));
        let os = self.required(root, &kids, "os").and_then(|n| self.os(n));
        let description = get(&kids, "description").map(|n| self.leaf(n));
        let packages = get(&kids, "packages")
            .map(|n| self.packages(n))
            .unwrap_or_default();
        let files = get(&kids, "files")
            .map(|n| self.files(n))
            .unwrap_or_default();
        let commands = get(&kids, "commands")
            .map(|n| self.commands(n))
            .unwrap_or_default();
        let precommands = get(&kids, "precommands")
            .map(|n| self.commands(n))
            .unwrap_or_default();
        let repositories = get(&kids, "repositories")
            .map(|n| self.repositories(n))
            .unwrap_or_default();
        let disk_size = get(&kids, "disk").and_then(|n| self.disk(n));
        Some(Template {
            version,
            name: name?,
            description,
            os: os?,
            packages,
            files,
            commands,
            precommands,
            repositories,
            disk_size,
        })
    }

    fn os(&mut self, node: Node<'_, 'i>) -> Option<Os> {
        self.attrs(node, &[]);
        let kids = self.children(
            node,
            &[
                "name",
                "version",
                "arch",
                "install",
                "rootpw",
                "key",
                "kernelparam",
                "icicle",
            ],
        );
        let name = self.required(node, &kids, "name").map(|n| self.leaf(n));
        let version = self.required(node, &kids, "version").map(|n| self.leaf(n));
        let arch = self.required(node, &kids, "arch").and_then(|n| {
            let t = self.leaf(n);
            if ARCHES.contains(&t.trim()) {
                Some(t.trim().to_string())
            } else {
                self.err(n, format!("arch `{t}` is not one of {}", ARCHES.join(", ")));
                None
            }
        });
        let install = self
            .required(node, &kids, "install")
            .and_then(|n| self.install(n));
        let rootpw = get(&kids, "rootpw").map(|n| self.leaf(n));
        let key = get(&kids, "key").map(|n| self.leaf(n));
        let kernelparam = get(&kids, "kernelparam").map(|n| self.leaf(n));
        let icicle_extra_command = get(&kids, "icicle").and_then(|n| {
            self.attrs(n, &[]);
            let k = self.children(n, &["extra_command"]);
            self.required(n, &k, "extra_command").map(|c| {
                self.attrs(c, &[]);
                self.text(c)
            })
        });
        Some(Os {
            name: name?,
            version: version?,
            arch: arch?,
            install: install?,
            rootpw,
            key,
            kernelparam,
            icicle_extra_command,
        })
    }

    fn install(&mut self, node: Node<'_, 'i>) -> Option<Install> {
        self.attrs(node, &["type"]);
        let Some(kind) = node.attribute("type") else {
            self.err(node, "missing attribute `type` (url or iso)");
            return None;
        };
        match kind.trim() {
            "url" => {
                let kids = self.children(node, &["url", "extras"]);
                if let Some(x) = get(&kids, "extras") {
                    self.err(x, "`extras` is only allowed with install type `iso` (Oz)");
                }
                let url = self.required(node, &kids, "url").map(|n| self.leaf(n))?;
                Some(Install::Url { url })
            }
            "iso" => {
                let kids =
                    self.children(node, &["iso", "md5sum", "sha1sum", "sha256sum", "extras"]);
                let iso = self.required(node, &kids, "iso").map(|n| self.leaf(n));
                let sums: Vec<_> = kids
                    .iter()
                    .filter(|(n, _)| n.ends_with("sum"))
                    .map(|(n, node)| (n.clone(), *node))
                    .collect();
                if sums.len() > 1 {
                    self.err(
                        sums[1].1,
                        "only one of md5sum, sha1sum, sha256sum is allowed",
                    );
                }
                let checksum = sums.first().map(|(k, n)| Checksum {
                    kind: k.clone(),
                    url: self.leaf(*n),
                });
                let extras = get(&kids, "extras")
                    .map(|n| self.extras(n))
                    .unwrap_or_default();
                Some(Install::Iso {
                    iso: iso?,
                    checksum,
                    extras,
                })
            }
            other => {
                self.err(
                    node,
                    format!("install type must be `url` or `iso`, not `{other}`"),
                );
                None
            }
        }
    }

    fn extras(&mut self, node: Node<'_, 'i>) -> Vec<Extra> {
        self.attrs(node, &[]);
        let mut out = Vec::new();
        for c in self.element_children(node) {
            let kind = c.tag_name().name();
            if !matches!(kind, "directory" | "file") {
                self.err(c, format!("element `{kind}` is not allowed here"));
                continue;
            }
            self.attrs(c, &["source", "destination"]);
            if c.has_children()
                && c.children()
                    .any(|x| !x.is_text() || !x.text().unwrap_or("").is_empty())
            {
                self.err(c, "must be empty");
            }
            match (c.attribute("source"), c.attribute("destination")) {
                (Some(s), Some(d)) => out.push(Extra {
                    kind: kind.to_string(),
                    source: s.to_string(),
                    destination: d.to_string(),
                }),
                _ => self.err(c, "attributes `source` and `destination` are required"),
            }
        }
        if out.is_empty() && self.errors.is_empty() {
            self.err(node, "`extras` needs at least one `directory` or `file`");
        }
        out
    }

    /// Elements of one name under a list element (`packages/package`, ...).
    fn list<'n>(&mut self, node: Node<'n, 'i>, item: &str) -> Vec<Node<'n, 'i>> {
        self.attrs(node, &[]);
        let mut out = Vec::new();
        for c in self.element_children(node) {
            if c.tag_name().name() == item && c.tag_name().namespace().is_none() {
                out.push(c);
            } else {
                self.err(
                    c,
                    format!("element `{}` is not allowed here", c.tag_name().name()),
                );
            }
        }
        out
    }

    fn name_attr(&mut self, node: Node<'_, 'i>) -> Option<String> {
        let n = node.attribute("name").map(str::to_string);
        if n.is_none() {
            self.err(node, "missing attribute `name`");
        }
        n
    }

    fn packages(&mut self, node: Node<'_, 'i>) -> Vec<Package> {
        let mut out = Vec::new();
        for p in self.list(node, "package") {
            self.attrs(p, &["name"]);
            let name = self.name_attr(p);
            let kids = self.children(p, &["repository", "file", "arguments"]);
            let repository = get(&kids, "repository").map(|n| self.leaf(n));
            let file = get(&kids, "file").map(|n| self.leaf(n));
            let arguments = get(&kids, "arguments").map(|n| self.leaf(n));
            if let Some(name) = name {
                out.push(Package {
                    name,
                    repository,
                    file,
                    arguments,
                });
            }
        }
        out
    }

    fn content_type(&mut self, node: Node<'_, 'i>) -> Option<ContentType> {
        match node.attribute("type").map(str::trim) {
            None | Some("raw") => Some(ContentType::Raw),
            Some("base64") => Some(ContentType::Base64),
            Some("url") => Some(ContentType::Url),
            Some(other) => {
                self.err(
                    node,
                    format!("type must be raw, base64 or url, not `{other}`"),
                );
                None
            }
        }
    }

    fn files(&mut self, node: Node<'_, 'i>) -> Vec<FileEntry> {
        let mut out = Vec::new();
        for f in self.list(node, "file") {
            self.attrs(f, &["name", "type"]);
            let name = self.name_attr(f);
            let content_type = self.content_type(f);
            let text = self.text(f);
            if content_type == Some(ContentType::Base64) && !text.is_empty() && !is_base64(&text) {
                self.err(f, "content is not base64");
            }
            if let (Some(name), Some(content_type)) = (name, content_type) {
                out.push(FileEntry {
                    name,
                    content_type,
                    content: text.trim().to_string(),
                });
            }
        }
        out
    }

    fn commands(&mut self, node: Node<'_, 'i>) -> Vec<CommandEntry> {
        let mut out = Vec::new();
        let mut position_nodes = Vec::new();
        let list = self.list(node, "command");
        for c in &list {
            let c = *c;
            self.attrs(c, &["name", "type", "position"]);
            let name = self.name_attr(c);
            let content_type = self.content_type(c);
            let text = self.text(c);
            let position = match c.attribute("position") {
                None => None,
                Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
                    position_nodes.push(c);
                    // An empty position passes the schema (`[0-9]*`) but is no position for Oz.
                    Some(p.parse::<u32>().unwrap_or(0))
                }
                Some(p) => {
                    self.err(c, format!("position `{p}` is not a number"));
                    None
                }
            };
            if content_type == Some(ContentType::Base64) && !is_base64(&text) {
                self.err(c, "content is not base64 (and must not be empty)");
            }
            if text.trim().is_empty() {
                self.err(c, "empty command (Oz rejects it)");
            }
            if let (Some(name), Some(content_type)) = (name, content_type) {
                out.push(CommandEntry {
                    name,
                    position,
                    content_type,
                    content: text.trim().to_string(),
                });
            }
        }
        // Oz: positions on all commands or none; when used, exactly 1..N.
        if !position_nodes.is_empty() {
            if position_nodes.len() != list.len() {
                self.err(
                    node,
                    "command positions must be given on all commands or on none",
                );
            } else {
                let mut ps: Vec<u32> = out.iter().filter_map(|c| c.position).collect();
                ps.sort_unstable();
                let expected: Vec<u32> = (1..=ps.len() as u32).collect();
                if ps != expected {
                    self.err(
                        node,
                        "Cannot have duplicate or sparse command position order! (positions must be exactly 1..N)",
                    );
                }
            }
        }
        out
    }

    fn repositories(&mut self, node: Node<'_, 'i>) -> Vec<Repository> {
        let mut out = Vec::new();
        for r in self.list(node, "repository") {
            self.attrs(r, &["name"]);
            let name = self.name_attr(r);
            let kids = self.children(r, &["url", "signed", "persisted", "sslverify"]);
            let url = self.required(r, &kids, "url").map(|n| self.leaf(n));
            let flag = |v: &mut Self, key: &str, default: bool| -> bool {
                match get(&kids, key) {
                    None => default,
                    Some(n) => {
                        let t = v.text(n);
                        match t.to_ascii_lowercase().as_str() {
                            "true" | "yes" => true,
                            "false" | "no" => false,
                            _ => {
                                v.err(n, format!("`{t}` is not a boolean (true/false/yes/no)"));
                                default
                            }
                        }
                    }
                }
            };
            let signed = flag(self, "signed", false);
            let persisted = flag(self, "persisted", true);
            let sslverify = flag(self, "sslverify", false);
            if let Some(u) = &url
                && let Some(host) = url_host(u)
                && matches!(
                    host.to_ascii_lowercase().as_str(),
                    "localhost" | "127.0.0.1" | "localhost.localdomain"
                )
            {
                let at = get(&kids, "url").unwrap_or(r);
                self.err(
                            at,
                            format!("repositories cannot be on localhost (`{host}`): the guest cannot reach them"),
                        );
            }
            if let (Some(name), Some(url)) = (name, url) {
                out.push(Repository {
                    name,
                    url,
                    signed,
                    persisted,
                    sslverify,
                });
            }
        }
        out
    }

    fn disk(&mut self, node: Node<'_, 'i>) -> Option<String> {
        self.attrs(node, &[]);
        let kids = self.children(node, &["size"]);
        let size = self.required(node, &kids, "size")?;
        self.attrs(size, &[]);
        let text = self.text(size);
        if !matches_disk_size_pattern(&text) {
            self.err(
                size,
                format!("disk size `{text}` does not match the schema's pattern"),
            );
            return None;
        }
        if let Err(m) = disk_size_bytes(&text) {
            self.err(size, m);
            return None;
        }
        Some(text)
    }
}

fn get<'n, 'i>(kids: &[(String, Node<'n, 'i>)], name: &str) -> Option<Node<'n, 'i>> {
    kids.iter().find(|(n, _)| n == name).map(|(_, n)| *n)
}

fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let pad = s.len() - body.len();
    !body.is_empty()
        && pad <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// `([0-9]*) *([kKmMgGtTpPeEzZyY]?[iI]?[bB]?)`, anchored.
fn matches_disk_size_pattern(s: &str) -> bool {
    let rest = s.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.trim_start_matches(' ');
    let mut chars = rest.chars().peekable();
    if chars
        .peek()
        .is_some_and(|c| "kKmMgGtTpPeEzZyY".contains(*c))
    {
        chars.next();
    }
    if chars.peek().is_some_and(|c| "iI".contains(*c)) {
        chars.next();
    }
    if chars.peek().is_some_and(|c| "bB".contains(*c)) {
        chars.next();
    }
    chars.next().is_none()
}

/// Oz's disk size rule: spaces removed, lower-cased, leading digits = number, the rest = unit.
/// No unit = GiB; `b`, `g` (2^30), `t` (2^40), `kb…yb` (10^3i), `kib…yib` (2^10i).
pub fn disk_size_bytes(s: &str) -> Result<u128, String> {
    let t: String = s
        .chars()
        .filter(|c| *c != ' ')
        .collect::<String>()
        .to_lowercase();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let unit = &t[digits.len()..];
    let n: u128 = digits
        .parse()
        .map_err(|_| format!("Invalid disk size `{s}`: no number"))?;
    let units = ["k", "m", "g", "t", "p", "e", "z", "y"];
    let mult: u128 = match unit {
        "" | "g" => 1 << 30,
        "b" => 1,
        "t" => 1 << 40,
        _ => {
            let (prefix, binary) = if let Some(p) = unit.strip_suffix("ib") {
                (p, true)
            } else if let Some(p) = unit.strip_suffix('b') {
                (p, false)
            } else {
                return Err(format!("Invalid disk size `{s}`: unknown unit `{unit}`"));
            };
            let i = units
                .iter()
                .position(|u| *u == prefix)
                .ok_or_else(|| format!("Invalid disk size `{s}`: unknown unit `{unit}`"))?
                as u32
                + 1;
            if binary {
                1u128 << (10 * i)
            } else {
                1000u128.pow(i)
            }
        }
    };
    Ok(n * mult)
}

/// The host part of a URL (`scheme://[user@]host[:port]/...`), if it has one.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit('@').next()?;
    let host = if let Some(h) = hostport.strip_prefix('[') {
        h.split(']').next()?
    } else {
        hostport.split(':').next()?
    };
    Some(host)
}

/// XML text/attribute escaping.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

impl Template {
    /// Writes the template as TDL XML (4-space indentation, like the Fedora samples).
    pub fn to_xml(&self) -> String {
        let e = xml_escape;
        let mut o = String::new();
        match &self.version {
            Some(v) => o.push_str(&format!("<template version='{}'>\n", e(v))),
            None => o.push_str("<template>\n"),
        }
        o.push_str(&format!("    <name>{}</name>\n", e(&self.name)));
        if let Some(d) = &self.description {
            o.push_str(&format!("    <description>{}</description>\n", e(d)));
        }
        let os = &self.os;
        o.push_str("    <os>\n");
        o.push_str(&format!("        <name>{}</name>\n", e(&os.name)));
        o.push_str(&format!("        <version>{}</version>\n", e(&os.version)));
        o.push_str(&format!("        <arch>{}</arch>\n", e(&os.arch)));
        match &os.install {
            Install::Url { url } => {
                o.push_str("        <install type='url'>\n");
                o.push_str(&format!("            <url>{}</url>\n", e(url)));
            }
            Install::Iso {
                iso,
                checksum,
                extras,
            } => {
                o.push_str("        <install type='iso'>\n");
                o.push_str(&format!("            <iso>{}</iso>\n", e(iso)));
                if let Some(c) = checksum {
                    o.push_str(&format!(
                        "            <{k}>{}</{k}>\n",
                        e(&c.url),
                        k = c.kind
                    ));
                }
                if !extras.is_empty() {
                    o.push_str("            <extras>\n");
                    for x in extras {
                        o.push_str(&format!(
                            "                <{} source='{}' destination='{}'/>\n",
                            x.kind,
                            e(&x.source),
                            e(&x.destination)
                        ));
                    }
                    o.push_str("            </extras>\n");
                }
            }
        }
        o.push_str("        </install>\n");
        for (tag, v) in [
            ("rootpw", &os.rootpw),
            ("key", &os.key),
            ("kernelparam", &os.kernelparam),
        ] {
            if let Some(v) = v {
                o.push_str(&format!("        <{tag}>{}</{tag}>\n", e(v)));
            }
        }
        if let Some(c) = &os.icicle_extra_command {
            o.push_str(&format!(
                "        <icicle>\n            <extra_command>{}</extra_command>\n        </icicle>\n",
                e(c)
            ));
        }
        o.push_str("    </os>\n");
        if !self.packages.is_empty() {
            o.push_str("    <packages>\n");
            for p in &self.packages {
                o.push_str(&format!("        <package name='{}'>", e(&p.name)));
                for (tag, v) in [
                    ("repository", &p.repository),
                    ("file", &p.file),
                    ("arguments", &p.arguments),
                ] {
                    if let Some(v) = v {
                        o.push_str(&format!("<{tag}>{}</{tag}>", e(v)));
                    }
                }
                o.push_str("</package>\n");
            }
            o.push_str("    </packages>\n");
        }
        let ty = |t: ContentType| match t {
            ContentType::Raw => "raw",
            ContentType::Base64 => "base64",
            ContentType::Url => "url",
        };
        if !self.files.is_empty() {
            o.push_str("    <files>\n");
            for f in &self.files {
                o.push_str(&format!(
                    "        <file name='{}' type='{}'>{}</file>\n",
                    e(&f.name),
                    ty(f.content_type),
                    e(&f.content)
                ));
            }
            o.push_str("    </files>\n");
        }
        for (tag, list) in [
            ("commands", &self.commands),
            ("precommands", &self.precommands),
        ] {
            if list.is_empty() {
                continue;
            }
            o.push_str(&format!("    <{tag}>\n"));
            for c in list {
                let pos = c
                    .position
                    .map(|p| format!(" position='{p}'"))
                    .unwrap_or_default();
                o.push_str(&format!(
                    "        <command name='{}'{pos} type='{}'>{}</command>\n",
                    e(&c.name),
                    ty(c.content_type),
                    e(&c.content)
                ));
            }
            o.push_str(&format!("    </{tag}>\n"));
        }
        if !self.repositories.is_empty() {
            o.push_str("    <repositories>\n");
            for r in &self.repositories {
                o.push_str(&format!(
                    "        <repository name='{}'>\n            <url>{}</url>\n            <signed>{}</signed>\n            <persisted>{}</persisted>\n            <sslverify>{}</sslverify>\n        </repository>\n",
                    e(&r.name),
                    e(&r.url),
                    r.signed,
                    r.persisted,
                    r.sslverify
                ));
            }
            o.push_str("    </repositories>\n");
        }
        if let Some(s) = &self.disk_size {
            o.push_str(&format!(
                "    <disk>\n        <size>{}</size>\n    </disk>\n",
                e(s)
            ));
        }
        o.push_str("</template>\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_sizes_follow_oz() {
        assert_eq!(disk_size_bytes("10").unwrap(), 10 << 30);
        assert_eq!(disk_size_bytes("10G").unwrap(), 10 << 30);
        assert_eq!(disk_size_bytes("1 T").unwrap(), 1 << 40);
        assert_eq!(disk_size_bytes("2kb").unwrap(), 2000);
        assert_eq!(disk_size_bytes("2KiB").unwrap(), 2048);
        assert_eq!(disk_size_bytes("3b").unwrap(), 3);
        assert!(disk_size_bytes("10E").is_err());
        assert!(disk_size_bytes("10Ti").is_err());
        assert!(matches_disk_size_pattern("10 GiB"));
        assert!(!matches_disk_size_pattern("10 GX"));
    }

    fn nested(depth: usize) -> String {
        let mut t = String::from("<template>\n");
        for _ in 1..depth {
            t.push_str("<x a='>'>");
        }
        for _ in 1..depth {
            t.push_str("</x>");
        }
        t.push_str("</template>\n");
        t
    }

    #[test]
    fn deep_nesting_is_refused_before_the_xml_parser_runs() {
        // at the limit: the XML parser runs and the validator reports the unknown element
        let e = parse(&nested(MAX_DEPTH)).unwrap_err();
        assert!(
            e.0.iter()
                .any(|x| x.message == "element `x` is not allowed here"),
            "{e}"
        );
        let e = parse(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        // `<template>` is on line 1, 64 `<x a='>'>` (9 characters each) on line 2
        let col = 1 + 9 * (MAX_DEPTH as u32 - 1);
        assert_eq!(
            e.to_string(),
            format!("2:{col}: elements nested deeper than 64 levels")
        );
        // 30,000 levels would overflow the XML parser's stack; this thread's stack is small
        let e = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(|| parse(&nested(30_000)))
            .unwrap()
            .join()
            .expect("no stack overflow")
            .unwrap_err();
        assert!(
            e.to_string()
                .ends_with("elements nested deeper than 64 levels"),
            "{e}"
        );
    }

    #[test]
    fn comments_cdata_and_self_closing_tags_do_not_nest() {
        let mut t = String::from("<?xml version='1.0'?><!-- <a><b> --><template>");
        for _ in 0..200 {
            t.push_str("<br/><!-- <x> --><![CDATA[<y>]]><?pi <z>?>");
        }
        t.push_str("</template>");
        let e = parse(&t).unwrap_err();
        assert!(
            e.0.iter().all(|x| !x.message.contains("nested deeper")),
            "{e}"
        );
        let many = format!("<template>{}</template>", "<a/>".repeat(MAX_NODES));
        let e = parse(&many).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(
            e.to_string(),
            format!(
                "1:{}: more than 100000 elements, comments and processing instructions",
                11 + 4 * (MAX_NODES - 1)
            )
        );
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("http://localhost:80/x"), Some("localhost"));
        assert_eq!(url_host("https://u@127.0.0.1/x"), Some("127.0.0.1"));
        assert_eq!(url_host("http://[::1]:8/"), Some("::1"));
        assert_eq!(url_host("nope"), None);
    }

    #[test]
    fn round_trip_through_writer() {
        let text = "<template version='1.0'><name>a&amp;b</name><os><name>Fedora</name><version>29</version>\
            <arch>x86_64</arch><install type='iso'><iso>http://x/a.iso</iso><sha256sum>http://x/s</sha256sum>\
            <extras><file source='a' destination='b'/></extras></install><rootpw>p&lt;w</rootpw></os>\
            <commands><command name='c1' position='2'>echo 2</command><command name='c0' position='1'>echo 1</command></commands>\
            <repositories><repository name='r'><url>http://example.com/r</url><signed>Yes</signed></repository></repositories>\
            <packages><package name='p'><file>f</file></package></packages>\
            <files><file name='/etc/x' type='base64'></file></files>\
            <disk><size>20G</size></disk></template>";
        let t = parse(text).unwrap();
        assert_eq!(t.name, "a&b");
        assert!(t.repositories[0].signed && t.repositories[0].persisted);
        let again = parse(&t.to_xml()).unwrap();
        assert_eq!(t, again);
    }
}
