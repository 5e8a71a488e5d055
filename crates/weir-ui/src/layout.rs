//! A layered layout of a DAG, for drawing a run's graph as SVG on the server.
//!
//! The classic Sugiyama steps, kept simple and linear-ish so a 1,000-node graph lays out in
//! milliseconds (KFP's UI runs dagre in the browser, which takes seconds at that size):
//! 1. ranks by longest path from the sources, so every edge points down;
//! 2. a virtual node on every rank an edge crosses, so long edges take part in the ordering
//!    and are drawn as polylines around the nodes;
//! 3. the order within each rank by barycentres, sweeping down and up a few times, keeping
//!    the order with the fewest crossings;
//! 4. coordinates: ranks are rows, a rank's nodes are centred on the widest rank.

use std::collections::VecDeque;

/// Why a graph cannot be laid out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("edge {from} -> {to} names a node that does not exist (the graph has {nodes})")]
    UnknownNode { from: usize, to: usize, nodes: usize },
    #[error("the graph has a cycle through node {0}")]
    Cycle(usize),
}

/// Distances of the drawing, in SVG units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spacing {
    /// From one node's centre to the next in a row.
    pub column: f64,
    /// From one row to the next.
    pub row: f64,
}

impl Default for Spacing {
    fn default() -> Self {
        Self { column: 180.0, row: 90.0 }
    }
}

/// Where everything goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The centre of each node, by the node's index.
    pub nodes: Vec<(f64, f64)>,
    /// Each edge as a polyline from its source's centre to its target's, in the input order.
    pub edges: Vec<Vec<(f64, f64)>>,
    /// Each node's rank (row).
    pub ranks: Vec<usize>,
    pub width: f64,
    pub height: f64,
    /// Crossings between consecutive rows in the final order (what the ordering minimised).
    pub crossings: usize,
}

/// Lays out `nodes` nodes joined by `edges` (from, to).
pub fn layout(nodes: usize, edges: &[(usize, usize)], spacing: Spacing) -> Result<Layout, LayoutError> {
    let ranks = longest_path_ranks(nodes, edges)?;
    let graph = Layered::new(nodes, edges, &ranks);
    let mut order = graph.initial_order();
    let mut best = order.clone();
    let mut best_crossings = graph.crossings(&best);
    for sweep in 0..8 {
        if best_crossings == 0 {
            break;
        }
        if sweep % 2 == 0 {
            graph.sweep_down(&mut order);
        } else {
            graph.sweep_up(&mut order);
        }
        let crossings = graph.crossings(&order);
        if crossings < best_crossings {
            best = order.clone();
            best_crossings = crossings;
        }
    }
    Ok(graph.place(&best, nodes, edges, &ranks, spacing, best_crossings))
}

/// Each node's rank: 0 for a source, else one more than its highest predecessor (Kahn's order).
fn longest_path_ranks(nodes: usize, edges: &[(usize, usize)]) -> Result<Vec<usize>, LayoutError> {
    let mut successors = vec![Vec::new(); nodes];
    let mut indegree = vec![0usize; nodes];
    for &(from, to) in edges {
        if from >= nodes || to >= nodes {
            return Err(LayoutError::UnknownNode { from, to, nodes });
        }
        successors[from].push(to);
        indegree[to] += 1;
    }
    let mut ranks = vec![0usize; nodes];
    let mut ready: VecDeque<usize> = (0..nodes).filter(|&n| indegree[n] == 0).collect();
    let mut seen = 0;
    while let Some(node) = ready.pop_front() {
        seen += 1;
        for &next in &successors[node] {
            ranks[next] = ranks[next].max(ranks[node] + 1);
            indegree[next] -= 1;
            if indegree[next] == 0 {
                ready.push_back(next);
            }
        }
    }
    if seen < nodes {
        let stuck = (0..nodes).find(|&n| indegree[n] > 0).unwrap_or(0);
        return Err(LayoutError::Cycle(stuck));
    }
    Ok(ranks)
}

/// The graph with virtual nodes: every edge joins consecutive ranks.
struct Layered {
    /// Rank of every node, real ones first (their indices are the input's), then virtual ones.
    rank: Vec<usize>,
    /// Neighbours one rank up and one rank down.
    up: Vec<Vec<usize>>,
    down: Vec<Vec<usize>>,
    /// For each input edge, the nodes it passes through, source and target included.
    chains: Vec<Vec<usize>>,
    rows: usize,
}

impl Layered {
    fn new(nodes: usize, edges: &[(usize, usize)], ranks: &[usize]) -> Self {
        let mut rank = ranks.to_vec();
        let mut up = vec![Vec::new(); nodes];
        let mut down = vec![Vec::new(); nodes];
        let mut chains = Vec::with_capacity(edges.len());
        for &(from, to) in edges {
            let mut chain = vec![from];
            let mut previous = from;
            for r in ranks[from] + 1..ranks[to] {
                let virtual_node = rank.len();
                rank.push(r);
                up.push(Vec::new());
                down.push(Vec::new());
                down[previous].push(virtual_node);
                up[virtual_node].push(previous);
                chain.push(virtual_node);
                previous = virtual_node;
            }
            down[previous].push(to);
            up[to].push(previous);
            chain.push(to);
            chains.push(chain);
        }
        let rows = rank.iter().max().map_or(0, |r| r + 1);
        Self { rank, up, down, chains, rows }
    }

    /// Rows in the order a breadth-first walk from the sources meets their nodes, which keeps
    /// a chain's nodes in line from the start.
    fn initial_order(&self) -> Vec<Vec<usize>> {
        let mut order = vec![Vec::new(); self.rows];
        let mut placed = vec![false; self.rank.len()];
        let mut queue: VecDeque<usize> = (0..self.rank.len()).filter(|&n| self.up[n].is_empty()).collect();
        while let Some(node) = queue.pop_front() {
            if placed[node] {
                continue;
            }
            placed[node] = true;
            order[self.rank[node]].push(node);
            queue.extend(self.down[node].iter().copied().filter(|&n| !placed[n]));
        }
        order
    }

    fn positions(&self, order: &[Vec<usize>]) -> Vec<f64> {
        let mut position = vec![0.0; self.rank.len()];
        for row in order {
            for (i, &node) in row.iter().enumerate() {
                position[node] = i as f64;
            }
        }
        position
    }

    fn sweep_down(&self, order: &mut [Vec<usize>]) {
        for r in 1..order.len() {
            let position = self.positions(order);
            reorder(&mut order[r], &position, &self.up);
        }
    }

    fn sweep_up(&self, order: &mut [Vec<usize>]) {
        for r in (0..order.len().saturating_sub(1)).rev() {
            let position = self.positions(order);
            reorder(&mut order[r], &position, &self.down);
        }
    }

    /// Crossings between consecutive rows: pairs of edges whose ends are in opposite orders.
    fn crossings(&self, order: &[Vec<usize>]) -> usize {
        let position = self.positions(order);
        let mut total = 0;
        for row in order {
            let mut ends: Vec<(f64, f64)> = Vec::new();
            for &node in row {
                for &next in &self.down[node] {
                    ends.push((position[node], position[next]));
                }
            }
            ends.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            // Inversions of the lower ends, counted by insertion into a sorted list: the
            // rows of a run's graph are short enough that this stays fast.
            let mut seen: Vec<f64> = Vec::with_capacity(ends.len());
            for (_, lower) in ends {
                let at = seen.partition_point(|&x| x <= lower);
                total += seen.len() - at;
                seen.insert(at, lower);
            }
        }
        total
    }

    fn place(
        &self,
        order: &[Vec<usize>],
        nodes: usize,
        edges: &[(usize, usize)],
        ranks: &[usize],
        spacing: Spacing,
        crossings: usize,
    ) -> Layout {
        let widest = order.iter().map(Vec::len).max().unwrap_or(0);
        let mut point = vec![(0.0, 0.0); self.rank.len()];
        for (r, row) in order.iter().enumerate() {
            let offset = (widest - row.len()) as f64 / 2.0;
            for (i, &node) in row.iter().enumerate() {
                point[node] = ((offset + i as f64 + 0.5) * spacing.column, (r as f64 + 0.5) * spacing.row);
            }
        }
        let edge_lines = (0..edges.len()).map(|e| self.chains[e].iter().map(|&n| point[n]).collect()).collect();
        Layout {
            nodes: point[..nodes].to_vec(),
            edges: edge_lines,
            ranks: ranks.to_vec(),
            width: widest as f64 * spacing.column,
            height: self.rows as f64 * spacing.row,
            crossings,
        }
    }
}

/// Sorts a row by the mean position of each node's neighbours in the row before it; a node
/// without neighbours there keeps its place.
fn reorder(row: &mut [usize], position: &[f64], neighbours: &[Vec<usize>]) {
    let mut keyed: Vec<(f64, usize)> = row
        .iter()
        .enumerate()
        .map(|(i, &node)| {
            let near = &neighbours[node];
            let key = if near.is_empty() {
                i as f64
            } else {
                near.iter().map(|&n| position[n]).sum::<f64>() / near.len() as f64
            };
            (key, node)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    for (slot, (_, node)) in row.iter_mut().zip(keyed) {
        *slot = node;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_the_longest_path() {
        // a -> b -> c, a -> c: c is below b, not beside it.
        let l = layout(3, &[(0, 1), (1, 2), (0, 2)], Spacing::default()).unwrap();
        assert_eq!(l.ranks, [0, 1, 2]);
        assert!(l.nodes[0].1 < l.nodes[1].1 && l.nodes[1].1 < l.nodes[2].1);
        // The long edge a -> c bends through a point on b's row.
        assert_eq!(l.edges[2].len(), 3);
        assert_eq!(l.edges[2][1].1, l.nodes[1].1);
    }

    #[test]
    fn every_edge_points_down_and_nodes_do_not_overlap() {
        let l = layout(4, &[(0, 1), (0, 2), (1, 3), (2, 3)], Spacing::default()).unwrap();
        for line in &l.edges {
            assert!(line.windows(2).all(|w| w[1].1 > w[0].1), "{line:?}");
        }
        let mut points: Vec<(i64, i64)> = l.nodes.iter().map(|&(x, y)| (x as i64, y as i64)).collect();
        points.sort();
        points.dedup();
        assert_eq!(points.len(), 4);
        assert_eq!(l.crossings, 0);
    }

    #[test]
    fn targets_follow_their_sources() {
        // Sources 0, 1 and targets 2, 3 wired crosswise (0 -> 3, 1 -> 2): a naive order crosses.
        let l = layout(4, &[(0, 3), (1, 2)], Spacing::default()).unwrap();
        assert_eq!(l.crossings, 0);
        let (x0, x1, x2, x3) = (l.nodes[0].0, l.nodes[1].0, l.nodes[2].0, l.nodes[3].0);
        assert_eq!(x0 < x1, x3 < x2, "targets follow their sources: {:?}", l.nodes);
    }

    #[test]
    fn the_ordering_removes_crossings_the_first_order_has() {
        // Discovery order (0's targets 2, 3, then 1's target 4; then 6 before 5) crosses the
        // edges into 5 and 6; the barycentric sweeps must find an order with fewer.
        let edges = [(0, 2), (0, 3), (1, 4), (2, 6), (3, 5), (4, 5), (1, 6)];
        let ranks = longest_path_ranks(7, &edges).unwrap();
        let graph = Layered::new(7, &edges, &ranks);
        let first = graph.crossings(&graph.initial_order());
        let l = layout(7, &edges, Spacing::default()).unwrap();
        assert!(l.crossings < first, "{} crossings after ordering, {first} before", l.crossings);
    }

    #[test]
    fn bad_graphs_are_refused() {
        assert_eq!(layout(2, &[(0, 1), (1, 0)], Spacing::default()).unwrap_err(), LayoutError::Cycle(0));
        assert!(matches!(layout(1, &[(0, 5)], Spacing::default()), Err(LayoutError::UnknownNode { .. })));
        let empty = layout(0, &[], Spacing::default()).unwrap();
        assert!(empty.nodes.is_empty() && empty.width == 0.0);
    }

    #[test]
    fn a_thousand_node_pipeline_lays_out() {
        // A ParallelFor-like fan-out and fan-in, with chains: 10 branches of 99 steps between a
        // start and an end.
        let mut edges = Vec::new();
        let (start, end) = (0, 991);
        for branch in 0..10 {
            let first = 1 + branch * 99;
            edges.push((start, first));
            for step in first..first + 98 {
                edges.push((step, step + 1));
            }
            edges.push((first + 98, end));
        }
        let l = layout(992, &edges, Spacing::default()).unwrap();
        assert_eq!(l.ranks[end], 100);
        assert_eq!(l.crossings, 0);
        assert!((l.width - 10.0 * Spacing::default().column).abs() < 1e-9);
    }
}
