//! The installation's trust graph: which anchor vouches for which identity, group, server,
//! controller and update key, as text, Graphviz DOT and a self-drawn SVG, and the impact of a
//! compromised key (everything reachable from it).
//!
//! The SVG is laid out here (layers by longest path from the unvouched anchors, nodes ordered
//! by their parents' positions) instead of calling Graphviz: the graph is small (tens of
//! nodes), the operator tool then needs no extra program, and the picture is the same on
//! every machine. `--format dot` output remains for anyone who prefers Graphviz.
//!
//! Every edge is labelled "checked" or "recorded" ([`Graph::checked`]): only an XTT root's
//! signature on a server certificate is verified; every other edge is an operator's, a
//! service's or a bundle's statement, which the store cannot verify, and is shown as such so
//! that the picture (and `--impact`) does not present claims as facts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use crate::anchor::{Anchor, AnchorKind, Edge, EdgeKind, Fingerprint, Status, UnixSeconds};
use crate::store::signature_checked;

/// What "checked" and "recorded" mean, for every output that uses the words.
const LEGEND: &str = "checked: a signature verifies it (XTT root on a server certificate); \
recorded: an operator's, service's or bundle's statement, not verified";

/// One node: everything but the key material.
#[derive(Clone, Debug)]
pub struct Node {
    /// The anchor's fingerprint.
    pub fingerprint: Fingerprint,
    /// Its kind.
    pub kind: AnchorKind,
    /// Its name.
    pub name: String,
    /// Its roles, as text.
    pub roles: String,
    /// Its state at the graph's time.
    pub status: Status,
}

/// The trust graph at one moment.
#[derive(Clone, Debug)]
pub struct Graph {
    /// Nodes, in store order.
    pub nodes: Vec<Node>,
    /// Edges between them.
    pub edges: Vec<Edge>,
    /// The edges among [`Self::edges`] whose signature verifies (see
    /// [`crate::store::signature_checked`]); every other edge is only recorded.
    pub checked: BTreeSet<Edge>,
}

/// What a compromised anchor affects.
#[derive(Clone, Debug)]
pub struct Impact {
    /// The compromised anchor.
    pub root: Node,
    /// Everything reachable from it, with the path length.
    pub affected: Vec<(Node, usize)>,
    /// How many edges leave the compromised anchor and the affected ones (the edges the list
    /// was built from).
    pub followed: usize,
    /// How many of those are only recorded, not checked: the list is no more right than they
    /// are, and edges nobody recorded are missing from it.
    pub unchecked: usize,
}

fn esc_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn esc_dot(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn colour(kind: AnchorKind) -> &'static str {
    match kind {
        AnchorKind::Manufacturer => "#f4cccc",
        AnchorKind::XttRoot => "#fce5cd",
        AnchorKind::XttServer => "#fff2cc",
        AnchorKind::DaaGroup => "#d9ead3",
        AnchorKind::Controller => "#d0e0e3",
        AnchorKind::TteTaSecret | AnchorKind::TteDevSecret => "#cfe2f3",
        AnchorKind::UpdateKey => "#d9d2e9",
        AnchorKind::DeviceIdentity => "#ead1dc",
        AnchorKind::TlsRoot => "#d9d9d9",
    }
}

impl Graph {
    /// Builds the graph from stored anchors and edges (material is not copied).
    pub fn new(anchors: &[Anchor], edges: &[Edge], now: UnixSeconds) -> Self {
        let nodes = anchors
            .iter()
            .map(|a| Node {
                fingerprint: a.fingerprint,
                kind: a.kind,
                name: a.name.clone(),
                roles: a.roles.to_string(),
                status: a.validity.status(now),
            })
            .collect();
        let checked = edges
            .iter()
            .filter(|e| signature_checked(anchors, e))
            .copied()
            .collect();
        Graph {
            nodes,
            edges: edges.to_vec(),
            checked,
        }
    }

    /// "checked" or "recorded": whether `e`'s signature was verified.
    pub fn edge_status(&self, e: &Edge) -> &'static str {
        if self.checked.contains(e) {
            "checked"
        } else {
            "recorded"
        }
    }

    fn node(&self, fp: &Fingerprint) -> Option<&Node> {
        self.nodes.iter().find(|n| n.fingerprint == *fp)
    }

    fn children(&self, fp: &Fingerprint) -> impl Iterator<Item = &Edge> {
        let fp = *fp;
        self.edges.iter().filter(move |e| e.from == fp)
    }

    fn label(n: &Node) -> String {
        format!(
            "{} {} [{}] {}",
            n.kind,
            n.name,
            n.fingerprint.short(),
            n.status
        )
    }

    /// Everything transitively vouched for by (or rotated from) `fp`, nearest first.
    pub fn impact(&self, fp: &Fingerprint) -> Option<Impact> {
        let root = self.node(fp)?.clone();
        let mut seen = BTreeSet::from([*fp]);
        let mut queue = VecDeque::from([(*fp, 0usize)]);
        let mut affected = Vec::new();
        while let Some((at, depth)) = queue.pop_front() {
            for e in self.children(&at) {
                if seen.insert(e.to) {
                    if let Some(n) = self.node(&e.to) {
                        affected.push((n.clone(), depth + 1));
                    }
                    queue.push_back((e.to, depth + 1));
                }
            }
        }
        let followed: Vec<&Edge> = self
            .edges
            .iter()
            .filter(|e| seen.contains(&e.from))
            .collect();
        Some(Impact {
            root,
            affected,
            followed: followed.len(),
            unchecked: followed
                .iter()
                .filter(|e| !self.checked.contains(e))
                .count(),
        })
    }

    /// An indented tree per unvouched anchor; shared subjects are printed once and referred to
    /// afterwards. Ends with the edge list, so nothing is hidden by the tree form.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let has_parent: BTreeSet<Fingerprint> = self.edges.iter().map(|e| e.to).collect();
        let mut printed = BTreeSet::new();
        let _ = writeln!(
            out,
            "Trust graph: {} anchors, {} edges ({} checked, {} recorded)",
            self.nodes.len(),
            self.edges.len(),
            self.checked.len(),
            self.edges.len() - self.checked.len()
        );
        let _ = writeln!(out, "({LEGEND})");
        let mut starts: Vec<&Node> = self
            .nodes
            .iter()
            .filter(|n| !has_parent.contains(&n.fingerprint))
            .collect();
        // Anchors only on cycles have parents everywhere; start from them too.
        for n in &self.nodes {
            if !starts.iter().any(|s| s.fingerprint == n.fingerprint)
                && !self.reachable_from_any(&starts, &n.fingerprint)
            {
                starts.push(n);
            }
        }
        for s in starts {
            self.text_walk(&mut out, s, 0, None, &mut printed);
        }
        let _ = writeln!(out, "\nEdges:");
        for e in &self.edges {
            let name = |fp: &Fingerprint| {
                self.node(fp)
                    .map_or_else(|| fp.short(), |n| format!("{} {}", n.kind, n.name))
            };
            let _ = writeln!(
                out,
                "  {:<8}  {} [{}] --{}--> {} [{}]",
                self.edge_status(e),
                name(&e.from),
                e.from.short(),
                e.kind.as_str(),
                name(&e.to),
                e.to.short()
            );
        }
        out
    }

    fn reachable_from_any(&self, starts: &[&Node], target: &Fingerprint) -> bool {
        starts.iter().any(|s| {
            self.impact(&s.fingerprint)
                .is_some_and(|i| i.affected.iter().any(|(n, _)| n.fingerprint == *target))
        })
    }

    fn text_walk(
        &self,
        out: &mut String,
        n: &Node,
        depth: usize,
        via: Option<&Edge>,
        printed: &mut BTreeSet<Fingerprint>,
    ) {
        let indent = "  ".repeat(depth);
        let arrow = match via.map(|e| (e.kind, self.edge_status(e))) {
            None => String::new(),
            Some((EdgeKind::Vouches, status)) => format!("└─ vouches for ({status}) "),
            Some((EdgeKind::RotatedTo, status)) => format!("└─ rotated to ({status}) "),
        };
        if !printed.insert(n.fingerprint) {
            let _ = writeln!(
                out,
                "{indent}{arrow}{} {} [{}] (see above)",
                n.kind,
                n.name,
                n.fingerprint.short()
            );
            return;
        }
        let _ = writeln!(
            out,
            "{indent}{arrow}{} (roles: {})",
            Self::label(n),
            n.roles
        );
        for e in self.children(&n.fingerprint) {
            if let Some(child) = self.node(&e.to) {
                self.text_walk(out, child, depth + 1, Some(e), printed);
            }
        }
    }

    /// Graphviz DOT.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph trust {\n  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n");
        for n in &self.nodes {
            let dashed = if n.status.is_usable() {
                ""
            } else {
                ", color=\"#999999\", fontcolor=\"#999999\""
            };
            let _ = writeln!(
                out,
                "  \"{}\" [label=\"{}\\n{}\\n{}  ({})\", fillcolor=\"{}\"{}];",
                n.fingerprint.to_hex(),
                esc_dot(n.kind.as_str()),
                esc_dot(&n.name),
                n.fingerprint.short(),
                n.status,
                colour(n.kind),
                dashed
            );
        }
        let _ = writeln!(out, "  label=\"{}\"; labelloc=b;", esc_dot(LEGEND));
        for e in &self.edges {
            let style = match e.kind {
                EdgeKind::Vouches => "label=\"vouches",
                EdgeKind::RotatedTo => "style=dashed, label=\"rotated to",
            };
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\" [{} ({})\"];",
                e.from.to_hex(),
                e.to.to_hex(),
                style,
                self.edge_status(e)
            );
        }
        out.push_str("}\n");
        out
    }

    /// Layer of each node: the longest vouching path reaching it (bounded, so cycles end).
    fn layers(&self) -> BTreeMap<Fingerprint, usize> {
        let mut layer: BTreeMap<Fingerprint, usize> =
            self.nodes.iter().map(|n| (n.fingerprint, 0)).collect();
        let limit = self.nodes.len();
        for _ in 0..limit {
            let mut changed = false;
            for e in &self.edges {
                let from = layer.get(&e.from).copied().unwrap_or(0);
                if let Some(to) = layer.get_mut(&e.to) {
                    if *to < from + 1 && from < limit {
                        *to = from + 1;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        layer
    }

    /// A self-contained SVG picture (layered, top to bottom).
    pub fn to_svg(&self) -> String {
        const W: usize = 230;
        const H: usize = 58;
        const GAP_X: usize = 30;
        const GAP_Y: usize = 70;
        const MARGIN: usize = 20;
        let layers = self.layers();
        let depth = layers.values().copied().max().unwrap_or(0) + 1;
        let mut rows: Vec<Vec<Fingerprint>> = vec![Vec::new(); depth];
        for n in &self.nodes {
            let l = layers.get(&n.fingerprint).copied().unwrap_or(0);
            if let Some(row) = rows.get_mut(l) {
                row.push(n.fingerprint);
            }
        }
        // Order each row by the mean position of its parents (one barycentre pass).
        let mut pos: BTreeMap<Fingerprint, f64> = BTreeMap::new();
        for row in rows.iter_mut() {
            let key = |fp: &Fingerprint| {
                let parents: Vec<f64> = self
                    .edges
                    .iter()
                    .filter(|e| e.to == *fp)
                    .filter_map(|e| pos.get(&e.from).copied())
                    .collect();
                if parents.is_empty() {
                    f64::MAX
                } else {
                    parents.iter().sum::<f64>() / parents.len() as f64
                }
            };
            row.sort_by(|a, b| key(a).total_cmp(&key(b)).then(a.cmp(b)));
            for (i, fp) in row.iter().enumerate() {
                pos.insert(*fp, i as f64);
            }
        }
        let widest = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let width = MARGIN * 2 + widest * W + (widest - 1) * GAP_X;
        let height = MARGIN * 2 + depth * H + (depth.saturating_sub(1)) * GAP_Y + 30;
        let mut xy: BTreeMap<Fingerprint, (usize, usize)> = BTreeMap::new();
        for (l, row) in rows.iter().enumerate() {
            let row_w = row.len() * W + row.len().saturating_sub(1) * GAP_X;
            let x0 = (width - row_w) / 2;
            for (i, fp) in row.iter().enumerate() {
                xy.insert(*fp, (x0 + i * (W + GAP_X), MARGIN + 30 + l * (H + GAP_Y)));
            }
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"Helvetica, Arial, sans-serif\">"
        );
        out.push_str("  <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#444\"/></marker></defs>\n");
        let _ = writeln!(
            out,
            "  <text x=\"{MARGIN}\" y=\"{}\" font-size=\"14\" font-weight=\"bold\">Trust graph: {} anchors, {} edges ({} checked, {} recorded)<title>{}</title></text>",
            MARGIN + 4,
            self.nodes.len(),
            self.edges.len(),
            self.checked.len(),
            self.edges.len() - self.checked.len(),
            esc_xml(LEGEND)
        );
        for e in &self.edges {
            let (Some(&(x1, y1)), Some(&(x2, y2))) = (xy.get(&e.from), xy.get(&e.to)) else {
                continue;
            };
            let status = self.edge_status(e);
            let dash = match e.kind {
                EdgeKind::Vouches => "",
                EdgeKind::RotatedTo => " stroke-dasharray=\"6 4\"",
            };
            let _ = writeln!(
                out,
                "  <line class=\"edge {} {status}\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#444\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"{dash}><title>{} {} → {} ({status})</title></line>",
                e.kind.as_str(),
                x1 + W / 2,
                y1 + H,
                x2 + W / 2,
                y2,
                e.kind.as_str(),
                e.from.short(),
                e.to.short()
            );
        }
        for n in &self.nodes {
            let Some(&(x, y)) = xy.get(&n.fingerprint) else {
                continue;
            };
            let faded = if n.status.is_usable() { "1" } else { "0.45" };
            let _ = writeln!(
                out,
                "  <g class=\"node\" id=\"fp-{}\" opacity=\"{faded}\"><rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"8\" fill=\"{}\" stroke=\"#555\"/>\
<text x=\"{}\" y=\"{}\" font-size=\"11\" font-weight=\"bold\">{}</text>\
<text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>\
<text x=\"{}\" y=\"{}\" font-size=\"10\" font-family=\"monospace\">{}  {}</text></g>",
                n.fingerprint.to_hex(),
                colour(n.kind),
                x + 8,
                y + 15,
                esc_xml(n.kind.as_str()),
                x + 8,
                y + 32,
                esc_xml(&truncate(&n.name, 32)),
                x + 8,
                y + 49,
                n.fingerprint.short(),
                esc_xml(&n.status.to_string()),
            );
        }
        out.push_str("</svg>\n");
        out
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

impl Impact {
    /// Text for operators: what the compromised key affects and what an attacker could do.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let r = &self.root;
        let _ = writeln!(
            out,
            "If {} {} [{}] is compromised, an attacker could {}.",
            r.kind,
            r.name,
            r.fingerprint.short(),
            r.kind.compromise_means()
        );
        // Only the edges recorded in this store are followed, and most are statements nobody
        // verified: say so rather than present the list as the whole blast radius.
        if self.affected.is_empty() {
            let _ = writeln!(
                out,
                "No edge recorded in this store leads from it to another anchor (recorded edges \
                 only; unchecked edges may be missing or wrong, so this does not show that it \
                 vouches for nothing)."
            );
            return out;
        }
        let _ = writeln!(
            out,
            "By the edges recorded in this store ({} followed, {} checked, {} recorded only), \
             it vouches, directly or through others, for {} anchors:",
            self.followed,
            self.followed - self.unchecked,
            self.unchecked,
            self.affected.len()
        );
        for (n, depth) in &self.affected {
            let _ = writeln!(
                out,
                "  {}{} {} [{}] ({}; roles {})",
                "  ".repeat(depth.saturating_sub(1)),
                n.kind,
                n.name,
                n.fingerprint.short(),
                n.status,
                n.roles
            );
        }
        let _ = writeln!(
            out,
            "Recorded edges only; unchecked edges may be missing or wrong, so anchors may be \
             listed that it never vouched for, and others it did may be missing. ({LEGEND})"
        );
        out
    }
}

impl<B: crate::store::Backend> crate::store::AnchorStore<B> {
    /// The trust graph at `now`.
    pub fn graph(&self, now: UnixSeconds) -> Result<Graph, crate::error::AnchorError> {
        Ok(Graph::new(&self.list()?, &self.edges()?, now))
    }
}
