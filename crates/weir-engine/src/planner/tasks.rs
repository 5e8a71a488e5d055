//! A run's task rows with the lookups the engine makes on every pass.
//!
//! A ParallelFor of 10,000 steps is 20,000 rows, and the run is advanced once per finished
//! step: rebuilding lookups, scanning for a task or copying a loop's iterations on each pass
//! made a run quadratic in its size (292 s for 10,000 `sh -c true` steps). The indexes live as
//! long as the run's view and are kept up to date as rows are added; a pass costs what it
//! touches.

use std::collections::HashMap;

use weir_store::Task;

/// Task rows, indexed by id, by (parent, name) and by parent.
///
/// Rows are changed in place through [`Tasks::get_mut`] or [`Tasks::iter_mut`]; their id,
/// parent and name never change after creation (the indexes rely on it), so removing rows
/// goes through [`Tasks::retain`], which builds the indexes again.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    rows: Vec<Task>,
    by_id: HashMap<String, usize>,
    /// (parent id, name) → the first such row: iterations of a loop share a name.
    by_place: HashMap<String, HashMap<String, usize>>,
    by_parent: HashMap<String, Vec<usize>>,
    /// Per parent, how many of its first children are known to have ended: a loop of 10,000
    /// iterations looks at the few still open, not at all of them, on every pass.
    settled: HashMap<String, usize>,
}

impl From<Vec<Task>> for Tasks {
    fn from(rows: Vec<Task>) -> Self {
        let mut tasks = Tasks { rows, ..Default::default() };
        tasks.reindex();
        tasks
    }
}

impl Tasks {
    fn reindex(&mut self) {
        self.by_id.clear();
        self.by_place.clear();
        self.by_parent.clear();
        self.settled.clear();
        for i in 0..self.rows.len() {
            self.index_row(i);
        }
    }

    fn index_row(&mut self, i: usize) {
        let task = &self.rows[i];
        self.by_id.insert(task.id.clone(), i);
        self.by_place.entry(task.parent_id.clone()).or_default().entry(task.name.clone()).or_insert(i);
        self.by_parent.entry(task.parent_id.clone()).or_default().push(i);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Task> {
        self.rows.iter()
    }

    /// Mutable rows; their id, parent and name must stay as they are.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Task> {
        self.rows.iter_mut()
    }

    pub fn as_slice(&self) -> &[Task] {
        &self.rows
    }

    pub fn get(&self, id: &str) -> Option<&Task> {
        self.by_id.get(id).map(|&i| &self.rows[i])
    }

    /// Where the row with this id is: rows keep the order they were added in.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// A row to change in place; its id, parent and name must stay as they are.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Task> {
        self.by_id.get(id).map(|&i| &mut self.rows[i])
    }

    /// The first row named `name` under `parent_id`.
    pub fn child(&self, parent_id: &str, name: &str) -> Option<&Task> {
        self.by_place.get(parent_id)?.get(name).map(|&i| &self.rows[i])
    }

    /// The rows under `parent_id`, in the order they were added.
    pub fn children<'a>(&'a self, parent_id: &str) -> impl Iterator<Item = &'a Task> + 'a {
        self.by_parent.get(parent_id).into_iter().flatten().map(|&i| &self.rows[i])
    }

    /// How many rows are under `parent_id`.
    pub fn count_children(&self, parent_id: &str) -> usize {
        self.by_parent.get(parent_id).map_or(0, Vec::len)
    }

    /// The rows under `parent_id`, by iteration index, then creation.
    pub fn children_sorted(&self, parent_id: &str) -> Vec<&Task> {
        let mut children: Vec<&Task> = self.children(parent_id).collect();
        children.sort_by_key(|t| (t.iteration_index, t.created_at));
        children
    }

    /// The children of `parent_id` from the first that has not ended, in the order they were
    /// added. Rows that ended stay ended (only a retry reopens them, and it calls
    /// [`Tasks::forget_settled`]), so the ended ones in front are skipped for good.
    pub fn unsettled_children(&mut self, parent_id: &str) -> Vec<&Task> {
        let Some(children) = self.by_parent.get(parent_id) else { return Vec::new() };
        let start = self.settled.get(parent_id).copied().unwrap_or(0);
        let skip = children[start..].iter().take_while(|&&i| self.rows[i].state.is_terminal()).count();
        if skip > 0 {
            self.settled.insert(parent_id.to_string(), start + skip);
        }
        children[start + skip..].iter().map(|&i| &self.rows[i]).collect()
    }

    /// Forgets which children ended: a retry reopens them.
    pub fn forget_settled(&mut self) {
        self.settled.clear();
    }

    pub fn push(&mut self, task: Task) {
        self.rows.push(task);
        self.index_row(self.rows.len() - 1);
    }

    /// Replaces the row with `task`'s id, or adds it.
    pub fn upsert(&mut self, task: Task) {
        match self.by_id.get(&task.id) {
            Some(&i) => self.rows[i] = task,
            None => self.push(task),
        }
    }

    pub fn retain(&mut self, keep: impl FnMut(&Task) -> bool) {
        self.rows.retain(keep);
        self.reindex();
    }
}

impl<'a> IntoIterator for &'a Tasks {
    type Item = &'a Task;
    type IntoIter = std::slice::Iter<'a, Task>;

    fn into_iter(self) -> Self::IntoIter {
        self.rows.iter()
    }
}
