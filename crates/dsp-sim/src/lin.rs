//! Linearizability checking of recorded client histories (Wing & Gong / Lowe search with
//! memoisation, as in Porcupine).
//!
//! A [`History`] lists operations with the virtual times they were invoked and returned (or
//! never returned). A [`Model`] is the sequential specification. [`check`] decides whether the
//! operations can be ordered, each at one point between its invocation and its return, so that
//! the model accepts every output; an operation that never returned may take effect at any time
//! after its invocation, or not at all.
//!
//! # The search
//!
//! Calls and returns are sorted by time (a call at the same instant as a return counts as
//! concurrent with it). The search walks this list, tentatively linearizing any operation whose
//! call comes before the first pending return, backtracking when it meets the return of an
//! operation it has not linearized yet. Each `(set of linearized operations, model state)` pair
//! is explored once (memoisation), which makes the search fast on the histories real systems
//! produce; it is still exponential in the worst case, so it counts its steps and answers
//! [`Outcome::Unknown`] past [`Checker::max_steps`] instead of hanging. Models that act on
//! independent keys split the history with [`Model::partition`], and each part is checked
//! alone.
//!
//! # Counterexamples
//!
//! On a violation the checker shrinks the failing part: it finds the shortest prefix (in time)
//! that is already not linearizable, treating operations that return after the cut as pending,
//! then drops operations one by one while the rest stays non-linearizable. What remains is
//! printed as a timeline.

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Debug, Write as _};
use std::hash::Hash;

use dsp_core::Instant;

use crate::{Error, Result};

/// One client operation in a [`History`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client (process) that issued it. A client issues one operation at a time.
    pub client: u64,
    /// What it asked.
    pub input: I,
    /// When it was invoked.
    pub call: Instant,
    /// When it returned and what it returned; `None` if it never did (timed out, lost, the
    /// node crashed): such an operation may or may not have taken effect.
    pub returned: Option<(Instant, O)>,
}

impl<I, O> Operation<I, O> {
    /// The return time, or `Instant::MAX` for an operation that never returned.
    pub fn return_time(&self) -> Instant {
        self.returned.as_ref().map_or(Instant::MAX, |r| r.0)
    }

    /// The output, if the operation returned.
    pub fn output(&self) -> Option<&O> {
        self.returned.as_ref().map(|r| &r.1)
    }
}

/// The index of an operation in its [`History`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub usize);

/// A record of concurrent client operations, to check with [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History<I, O> {
    ops: Vec<Operation<I, O>>,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        Self { ops: Vec::new() }
    }
}

impl<I, O> History<I, O> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` invoked `input` at `at`; complete it later with
    /// [`History::complete`] (or never, if it never returns).
    pub fn invoke(&mut self, client: u64, input: I, at: Instant) -> OpId {
        self.ops.push(Operation {
            client,
            input,
            call: at,
            returned: None,
        });
        OpId(self.ops.len() - 1)
    }

    /// Records that the operation returned `output` at `at`.
    ///
    /// Fails, changing nothing, if `op` is unknown, already returned, or `at` is before its
    /// invocation.
    pub fn complete(&mut self, op: OpId, output: O, at: Instant) -> Result<()> {
        let Some(entry) = self.ops.get_mut(op.0) else {
            return Err(Error::InvalidHistory(format!("unknown operation {}", op.0)));
        };
        if entry.returned.is_some() {
            return Err(Error::InvalidHistory(format!(
                "operation {} already returned",
                op.0
            )));
        }
        if at < entry.call {
            return Err(Error::InvalidHistory(format!(
                "operation {} returns at {at:?}, before its call at {:?}",
                op.0, entry.call
            )));
        }
        entry.returned = Some((at, output));
        Ok(())
    }

    /// Appends a whole operation. Fails, changing nothing, if it returns before its call.
    pub fn push(&mut self, op: Operation<I, O>) -> Result<OpId> {
        if op.return_time() < op.call {
            return Err(Error::InvalidHistory(format!(
                "operation returns at {:?}, before its call at {:?}",
                op.return_time(),
                op.call
            )));
        }
        self.ops.push(op);
        Ok(OpId(self.ops.len() - 1))
    }

    /// The operations, in the order they were recorded.
    pub fn ops(&self) -> &[Operation<I, O>] {
        &self.ops
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A sequential specification: the object a history should look like, one operation at a time.
pub trait Model {
    /// The object's state. Hashed to memoise the search, so keep it small.
    type State: Clone + Eq + Hash + Debug;
    /// An operation's input. Equality lets the search treat pending operations with equal
    /// inputs as interchangeable.
    type Input: Debug + PartialEq;
    /// An operation's output.
    type Output: Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state`; returns the next state if the object could have answered
    /// `output`, `None` if not.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// Every state `input` could leave the object in when its output was never observed (the
    /// operation timed out). Not taking effect at all need not be listed: the checker already
    /// considers it.
    fn step_unknown(&self, state: &Self::State, input: &Self::Input) -> Vec<Self::State>;

    /// Splits the operations into independent groups (by key, say), each checked alone; each
    /// returned vector lists indices into `ops`. The default keeps them all together.
    fn partition(&self, ops: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        vec![(0..ops.len()).collect()]
    }
}

/// An operation on a [`RegisterModel`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterInput<V> {
    /// Set the value.
    Write(V),
    /// Read the value.
    Read,
    /// Set the value to `new` if it is `expected`.
    Cas {
        /// The value the register must hold.
        expected: V,
        /// The value to store.
        new: V,
    },
}

/// The output of a [`RegisterInput`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOutput<V> {
    /// A write completed.
    Written,
    /// A read returned this value.
    Value(V),
    /// Whether a compare-and-set succeeded.
    Cas(bool),
}

/// A single read/write/compare-and-set register holding a `V`, starting at `initial`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterModel<V> {
    /// The value before any write.
    pub initial: V,
}

impl<V: Clone + Eq + Hash + Debug> Model for RegisterModel<V> {
    type State = V;
    type Input = RegisterInput<V>;
    type Output = RegisterOutput<V>;

    fn init(&self) -> V {
        self.initial.clone()
    }

    fn step(&self, state: &V, input: &Self::Input, output: &Self::Output) -> Option<V> {
        match (input, output) {
            (RegisterInput::Write(v), RegisterOutput::Written) => Some(v.clone()),
            (RegisterInput::Read, RegisterOutput::Value(v)) => (v == state).then(|| v.clone()),
            (RegisterInput::Cas { expected, new }, RegisterOutput::Cas(ok)) => {
                match (expected == state, ok) {
                    (true, true) => Some(new.clone()),
                    (false, false) => Some(state.clone()),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn step_unknown(&self, state: &V, input: &Self::Input) -> Vec<V> {
        match input {
            RegisterInput::Write(v) => vec![v.clone()],
            RegisterInput::Read => vec![state.clone()],
            RegisterInput::Cas { expected, new } if expected == state => vec![new.clone()],
            RegisterInput::Cas { .. } => vec![state.clone()],
        }
    }
}

/// An operation on a [`KvModel`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput<K, V> {
    /// Store `value` under `key`.
    Put {
        /// The key.
        key: K,
        /// The value.
        value: V,
    },
    /// Read `key`.
    Get {
        /// The key.
        key: K,
    },
    /// Store `new` under `key` if it currently holds `expected` (`None`: absent).
    Cas {
        /// The key.
        key: K,
        /// The value the key must hold, `None` for "absent".
        expected: Option<V>,
        /// The value to store.
        new: V,
    },
}

impl<K, V> KvInput<K, V> {
    /// The key the operation acts on.
    pub fn key(&self) -> &K {
        match self {
            KvInput::Put { key, .. } | KvInput::Get { key } | KvInput::Cas { key, .. } => key,
        }
    }
}

/// The output of a [`KvInput`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput<V> {
    /// A put completed.
    Ok,
    /// A get returned this value (`None`: absent).
    Value(Option<V>),
    /// Whether a compare-and-set succeeded.
    Cas(bool),
}

/// A key-value store of independent registers (all keys start absent). Histories are checked
/// key by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvModel<K, V> {
    _types: std::marker::PhantomData<fn() -> (K, V)>,
}

impl<K, V> KvModel<K, V> {
    /// The model.
    pub fn new() -> Self {
        Self {
            _types: std::marker::PhantomData,
        }
    }
}

impl<K, V> Model for KvModel<K, V>
where
    K: Clone + Ord + Hash + Debug,
    V: Clone + Eq + Hash + Debug,
{
    type State = BTreeMap<K, V>;
    type Input = KvInput<K, V>;
    type Output = KvOutput<V>;

    fn init(&self) -> Self::State {
        BTreeMap::new()
    }

    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State> {
        match (input, output) {
            (KvInput::Put { key, value }, KvOutput::Ok) => {
                let mut next = state.clone();
                next.insert(key.clone(), value.clone());
                Some(next)
            }
            (KvInput::Get { key }, KvOutput::Value(v)) => {
                (state.get(key) == v.as_ref()).then(|| state.clone())
            }
            (KvInput::Cas { key, expected, new }, KvOutput::Cas(ok)) => {
                match (state.get(key) == expected.as_ref(), ok) {
                    (true, true) => {
                        let mut next = state.clone();
                        next.insert(key.clone(), new.clone());
                        Some(next)
                    }
                    (false, false) => Some(state.clone()),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn step_unknown(&self, state: &Self::State, input: &Self::Input) -> Vec<Self::State> {
        match input {
            KvInput::Put { key, value } => {
                let mut next = state.clone();
                next.insert(key.clone(), value.clone());
                vec![next]
            }
            KvInput::Get { .. } => vec![state.clone()],
            KvInput::Cas { key, expected, new } => {
                if state.get(key) == expected.as_ref() {
                    let mut next = state.clone();
                    next.insert(key.clone(), new.clone());
                    vec![next]
                } else {
                    vec![state.clone()]
                }
            }
        }
    }

    fn partition(&self, ops: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        let mut by_key: BTreeMap<&K, Vec<usize>> = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            by_key.entry(op.input.key()).or_default().push(i);
        }
        by_key.into_values().collect()
    }
}

/// A minimal non-linearizable set of operations, found by [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counterexample {
    /// The operation whose return first made the history non-linearizable (the end of the
    /// shortest failing prefix).
    pub culprit: Option<OpId>,
    /// A minimal core (indices into the history), by call time: together these operations
    /// cannot be linearized; drop any one and (if `minimal`) they can. The core alone can look
    /// odd (a stale read's core may be just the read, of a value "never written" within the
    /// core), so [`Counterexample::timeline`] shows it with its context.
    pub ops: Vec<OpId>,
    /// Operations of the counterexample that count as pending (they return after the failing
    /// point, or never).
    pub pending: Vec<OpId>,
    /// Whether shrinking finished (`false` if it ran out of steps: still a valid
    /// counterexample, just perhaps not the smallest).
    pub minimal: bool,
    /// The core operations, the culprit and nearby context as a readable timeline.
    pub timeline: String,
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "not linearizable: these {} operations admit no valid order{}",
            self.ops.len(),
            if self.minimal {
                ""
            } else {
                " (shrinking stopped early)"
            }
        )?;
        f.write_str(&self.timeline)
    }
}

/// The answer of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The history is linearizable.
    Linearizable,
    /// The history is not linearizable; a shrunk counterexample.
    NotLinearizable(Counterexample),
    /// The search exceeded its step bound before reaching an answer.
    Unknown {
        /// Steps taken.
        steps: u64,
    },
}

impl Outcome {
    /// Whether the history was proven linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Outcome::Linearizable)
    }

    /// Whether the history was proven not linearizable.
    pub fn is_violation(&self) -> bool {
        matches!(self, Outcome::NotLinearizable(_))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Linearizable => f.write_str("linearizable"),
            Outcome::NotLinearizable(c) => write!(f, "{c}"),
            Outcome::Unknown { steps } => write!(f, "unknown: search exceeded {steps} steps"),
        }
    }
}

/// Settings of the linearizability search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checker {
    /// Give up with [`Outcome::Unknown`] after this many search steps (summed over partitions).
    /// Default 10 million.
    pub max_steps: u64,
    /// Shrink a violation to a minimal counterexample. Default `true`.
    pub shrink: bool,
    /// Step budget for shrinking, on top of `max_steps`. Default 2 million.
    pub shrink_steps: u64,
}

impl Default for Checker {
    fn default() -> Self {
        Self {
            max_steps: 10_000_000,
            shrink: true,
            shrink_steps: 2_000_000,
        }
    }
}

/// Checks `history` against `model` with the default [`Checker`].
pub fn check<M: Model>(model: &M, history: &History<M::Input, M::Output>) -> Outcome {
    Checker::default().check(model, history)
}

/// The outcome of one search.
enum Found {
    Yes,
    No,
    Exhausted,
}

/// One timed operation as the search sees it: `ret` is `None` for pending operations.
#[derive(Clone, Copy)]
struct SearchOp {
    op: usize,
    call: Instant,
    ret: Option<Instant>,
}

const NIL: usize = usize::MAX;
/// Operations completed before the culprit that a counterexample shows as context.
const CONTEXT_BEFORE: usize = 6;
/// Operations a counterexample's timeline shows at most.
const MAX_SHOWN: usize = 40;
/// Failing prefixes longer than this are reported without shrinking.
const SHRINK_MAX_OPS: usize = 2_000;
/// States the explainability probe of shrinking explores at most.
const EXPLAIN_MAX_STATES: usize = 10_000;
const HEAD: usize = 0;

/// The set of linearized operations: a bitset that also tracks its first word that is not all
/// ones and its last non-zero word, so that its memoisation key is short when (as usual) the
/// linearized operations are a dense prefix plus a few beyond it.
struct LinSet {
    words: Vec<u64>,
    /// The first word that is not all ones.
    lo: usize,
    /// One past the last non-zero word.
    hi: usize,
}

impl LinSet {
    fn new(n: usize) -> Self {
        Self {
            words: vec![0; n.div_ceil(64).max(1)],
            lo: 0,
            hi: 0,
        }
    }

    fn contains(&self, i: usize) -> bool {
        self.words[i / 64] & (1u64 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize) {
        let w = i / 64;
        self.words[w] |= 1u64 << (i % 64);
        self.hi = self.hi.max(w + 1);
        while self.lo < self.words.len() && self.words[self.lo] == u64::MAX {
            self.lo += 1;
        }
    }

    fn clear(&mut self, i: usize) {
        let w = i / 64;
        self.words[w] &= !(1u64 << (i % 64));
        self.lo = self.lo.min(w);
        while self.hi > 0 && self.words[self.hi - 1] == 0 {
            self.hi -= 1;
        }
    }

    /// A canonical key: equal sets give equal keys.
    fn key(&self) -> (usize, Vec<u64>) {
        let end = self.hi.max(self.lo);
        (self.lo, self.words[self.lo..end].to_vec())
    }
}

/// Searches for a linearization of `ops` (indices and times); outputs come from `history`.
fn search<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    ops: &[SearchOp],
    budget: &mut u64,
) -> Found {
    // Number operations by call time, so the linearized set is mostly a dense prefix.
    let mut sorted = ops.to_vec();
    sorted.sort_by_key(|o| (o.call, o.op));
    let ops = sorted.as_slice();
    let n = ops.len();
    // Entries 1..=2n: (time, is_return, local op index). Calls sort before returns at equal
    // times, so touching operations count as concurrent.
    let mut events: Vec<(Instant, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call, false, i));
        events.push((op.ret.unwrap_or(Instant::MAX), true, i));
    }
    events.sort_unstable();
    let len = events.len() + 1;
    let mut next = vec![NIL; len];
    let mut prev = vec![NIL; len];
    let mut kind = vec![(false, 0usize); len];
    let mut ret_entry = vec![NIL; n];
    let mut call_entry = vec![NIL; n];
    for (k, &(_, is_ret, i)) in events.iter().enumerate() {
        let e = k + 1;
        kind[e] = (is_ret, i);
        if is_ret {
            ret_entry[i] = e;
        } else {
            call_entry[i] = e;
        }
        prev[e] = e - 1;
        next[e - 1] = e;
    }
    let mut match_of = vec![NIL; len];
    for i in 0..n {
        match_of[call_entry[i]] = ret_entry[i];
    }

    // Pending operations with equal inputs are interchangeable (neither has a return time to
    // respect), so only ever linearize them in call order: op i waits for `prev_same[i]`.
    let mut prev_same = vec![NIL; n];
    let mut last_of: Vec<(usize, usize)> = Vec::new(); // (representative op, last op)
    for &(_, is_ret, i) in &events {
        if is_ret || ops[i].ret.is_some() {
            continue;
        }
        let input = &history[ops[i].op].input;
        match last_of
            .iter_mut()
            .find(|(rep, _)| history[ops[*rep].op].input == *input)
        {
            Some(entry) => {
                prev_same[i] = entry.1;
                entry.1 = i;
            }
            None => last_of.push((i, i)),
        }
    }
    let known_total = ops.iter().filter(|o| o.ret.is_some()).count();
    let mut known_done = 0usize;
    let mut linearized = LinSet::new(n);
    let mut cache: HashSet<(usize, Vec<u64>, M::State)> = HashSet::new();
    // (call entry, state before it, alternative taken)
    let mut stack: Vec<(usize, M::State, usize)> = Vec::new();
    let mut state = model.init();
    let mut entry = next[HEAD];
    let mut start_alt = 0usize;

    loop {
        if known_done == known_total {
            return Found::Yes;
        }
        if *budget == 0 {
            return Found::Exhausted;
        }
        *budget -= 1;
        let (is_ret, i) = if entry == NIL {
            (true, NIL)
        } else {
            kind[entry]
        };
        if !is_ret {
            let op = &history[ops[i].op];
            let candidates: Vec<M::State> = match (&ops[i].ret, op.output()) {
                (Some(_), Some(output)) if start_alt == 0 => {
                    model.step(&state, &op.input, output).into_iter().collect()
                }
                (Some(_), _) => Vec::new(),
                (None, _) => {
                    let p = prev_same[i];
                    if p != NIL && !linearized.contains(p) {
                        Vec::new() // an equal pending operation called earlier goes first
                    } else {
                        // Taking effect without changing the state is the same as not taking
                        // effect, which the search already allows.
                        let mut next = model.step_unknown(&state, &op.input);
                        next.retain(|n| *n != state);
                        next
                    }
                }
            };
            let mut taken = None;
            for (alt, candidate) in candidates.into_iter().enumerate().skip(start_alt) {
                linearized.set(i);
                let (lo, words) = linearized.key();
                if cache.insert((lo, words, candidate.clone())) {
                    taken = Some((alt, candidate));
                    break;
                }
                linearized.clear(i);
            }
            start_alt = 0;
            if let Some((alt, candidate)) = taken {
                stack.push((entry, std::mem::replace(&mut state, candidate), alt));
                if ops[i].ret.is_some() {
                    known_done += 1;
                }
                // Lift the call and its return out of the list.
                let r = match_of[entry];
                next[prev[entry]] = next[entry];
                prev[next[entry]] = prev[entry];
                next[prev[r]] = next[r];
                if next[r] != NIL {
                    prev[next[r]] = prev[r];
                }
                entry = next[HEAD];
            } else {
                entry = next[entry];
            }
        } else {
            // A return (or the end) of an operation not yet linearized: backtrack.
            let Some((call, old_state, alt)) = stack.pop() else {
                return Found::No;
            };
            let (_, i) = kind[call];
            linearized.clear(i);
            if ops[i].ret.is_some() {
                known_done -= 1;
            }
            state = old_state;
            let r = match_of[call];
            next[prev[r]] = r;
            if next[r] != NIL {
                prev[next[r]] = r;
            }
            next[prev[call]] = call;
            prev[next[call]] = call;
            entry = call;
            start_alt = alt + 1;
        }
    }
}

/// Whether operation `y`'s output is possible in some state reachable from the initial one by
/// applying operations of `set` called before `y` returned, in any order, any number of times.
/// A cheap over-approximation (it ignores real time and applies operations repeatedly), used
/// only to keep shrinking from explaining a violation away. Gives up with `Yes` after
/// [`EXPLAIN_MAX_STATES`] states.
fn explainable<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    set: &[SearchOp],
    y: usize,
    budget: &mut u64,
) -> Found {
    let target = &history[y];
    let Some(output) = target.output() else {
        return Found::Yes;
    };
    let until = set
        .iter()
        .find(|o| o.op == y)
        .and_then(|o| o.ret)
        .unwrap_or(Instant::MAX);
    let movers: Vec<&SearchOp> = set.iter().filter(|o| o.op != y && o.call < until).collect();
    let init = model.init();
    let mut seen: HashSet<M::State> = HashSet::new();
    seen.insert(init.clone());
    let mut frontier = vec![init];
    while let Some(state) = frontier.pop() {
        if model.step(&state, &target.input, output).is_some() {
            return Found::Yes;
        }
        for o in &movers {
            if *budget == 0 {
                return Found::Exhausted;
            }
            *budget -= 1;
            let op = &history[o.op];
            let next: Vec<M::State> = match (o.ret, op.output()) {
                (Some(_), Some(out)) => model.step(&state, &op.input, out).into_iter().collect(),
                _ => model.step_unknown(&state, &op.input),
            };
            for n in next {
                if seen.len() >= EXPLAIN_MAX_STATES {
                    return Found::Yes;
                }
                if seen.insert(n.clone()) {
                    frontier.push(n);
                }
            }
        }
    }
    Found::No
}

impl Checker {
    /// Checks `history` against `model`.
    pub fn check<M: Model>(&self, model: &M, history: &History<M::Input, M::Output>) -> Outcome {
        let ops = history.ops();
        let mut budget = self.max_steps;
        let mut exhausted = false;
        for part in model.partition(ops) {
            let search_ops: Vec<SearchOp> = part
                .iter()
                .filter_map(|&i| ops.get(i))
                .zip(part.iter())
                .map(|(o, &i)| SearchOp {
                    op: i,
                    call: o.call,
                    ret: o.returned.as_ref().map(|r| r.0),
                })
                .collect();
            match search(model, ops, &search_ops, &mut budget) {
                Found::Yes => {}
                Found::No => return Outcome::NotLinearizable(self.shrink(model, ops, search_ops)),
                Found::Exhausted => {
                    exhausted = true;
                    break;
                }
            }
        }
        if exhausted {
            Outcome::Unknown {
                steps: self.max_steps,
            }
        } else {
            Outcome::Linearizable
        }
    }

    /// Shrinks a non-linearizable set of operations.
    fn shrink<M: Model>(
        &self,
        model: &M,
        history: &[Operation<M::Input, M::Output>],
        mut ops: Vec<SearchOp>,
    ) -> Counterexample {
        let mut budget = if self.shrink { self.shrink_steps } else { 0 };
        let mut minimal = self.shrink;
        ops.sort_by_key(|o| (o.call, o.op));
        // 1. The shortest non-linearizable prefix in time: cut after the k-th event; operations
        //    returning after the cut become pending, those called after it disappear.
        let mut times: Vec<Instant> = ops
            .iter()
            .flat_map(|o| [Some(o.call), o.ret])
            .flatten()
            .collect();
        times.sort_unstable();
        times.dedup();
        let prefix = |cut: Instant| -> Vec<SearchOp> {
            ops.iter()
                .filter(|o| o.call <= cut)
                .map(|o| SearchOp {
                    ret: o.ret.filter(|&r| r <= cut),
                    ..*o
                })
                .collect()
        };
        let (mut lo, mut hi) = (0usize, times.len());
        // Invariant: the prefix cut at times[hi - 1] (or the whole set) is not linearizable.
        while lo + 1 < hi && minimal {
            let mid = lo + (hi - lo) / 2;
            match search(model, history, &prefix(times[mid - 1]), &mut budget) {
                Found::No => hi = mid,
                Found::Yes => lo = mid,
                Found::Exhausted => minimal = false,
            }
        }
        let cut = times
            .get(hi.wrapping_sub(1))
            .copied()
            .unwrap_or(Instant::MAX);
        let failing_prefix = prefix(cut);
        // The operation whose return made the prefix fail.
        let culprit = failing_prefix
            .iter()
            .find(|o| o.ret == Some(cut))
            .map(|o| o.op);
        let mut current = failing_prefix.clone();
        // 2. Drop operations (in chunks, then one by one) while the rest stays
        //    non-linearizable, keeping the culprit, and keeping every output that could be
        //    explained before still explainable: otherwise a stale read would shrink to "a
        //    read of a value never written" by dropping the write it saw.
        let explains = |set: &[SearchOp], y: usize, budget: &mut u64| -> Found {
            explainable(model, history, set, y, budget)
        };
        let mut explained = Vec::new();
        if minimal && current.len() <= SHRINK_MAX_OPS {
            for o in current.iter().filter(|o| o.ret.is_some()) {
                match explains(&current, o.op, &mut budget) {
                    Found::Yes => explained.push(o.op),
                    Found::No => {}
                    Found::Exhausted => minimal = false,
                }
            }
        } else {
            minimal = false;
        }
        let mut chunk = (current.len() / 2).max(1);
        while minimal {
            let before_pass = current.len();
            let mut i = 0;
            while i < current.len() && minimal {
                let end = (i + chunk).min(current.len());
                let trial: Vec<SearchOp> = current
                    .iter()
                    .enumerate()
                    .filter(|&(k, o)| k < i || k >= end || Some(o.op) == culprit)
                    .map(|(_, o)| *o)
                    .collect();
                if trial.len() == current.len() {
                    i = end;
                    continue;
                }
                let mut accept = match search(model, history, &trial, &mut budget) {
                    Found::No => true,
                    Found::Yes => false,
                    Found::Exhausted => {
                        minimal = false;
                        false
                    }
                };
                for o in trial.iter().filter(|o| explained.contains(&o.op)) {
                    if !accept {
                        break;
                    }
                    match explains(&trial, o.op, &mut budget) {
                        Found::Yes => {}
                        Found::No => accept = false,
                        Found::Exhausted => {
                            minimal = false;
                            accept = false;
                        }
                    }
                }
                if accept {
                    current = trial;
                } else {
                    i = end;
                }
            }
            if chunk == 1 {
                if current.len() == before_pass {
                    break;
                }
            } else {
                chunk /= 2;
            }
        }
        // Context for a reader: the operations of the failing prefix concurrent with the
        // culprit, and the few that completed last before it was called.
        let culprit_call = culprit.map_or(Instant::MAX, |c| history[c].call);
        let mut before: Vec<&SearchOp> = failing_prefix
            .iter()
            .filter(|o| o.ret.is_some_and(|r| r < culprit_call))
            .collect();
        before.sort_by_key(|o| std::cmp::Reverse(o.ret));
        before.truncate(CONTEXT_BEFORE);
        let core: HashSet<usize> = current.iter().map(|o| o.op).collect();
        let mut shown: Vec<SearchOp> = failing_prefix
            .iter()
            .filter(|o| {
                core.contains(&o.op)
                    || o.ret.is_none_or(|r| r >= culprit_call)
                    || before.iter().any(|b| b.op == o.op)
            })
            .copied()
            .collect();
        // Keep the timeline readable: the culprit and the operations nearest to it in time.
        let hidden = shown.len().saturating_sub(MAX_SHOWN);
        if hidden > 0 {
            let anchor = culprit_call.min(cut);
            shown.sort_by_key(|o| {
                let distance = if o.call > anchor {
                    o.call - anchor
                } else {
                    anchor - o.call
                };
                (Some(o.op) != culprit, distance, o.op)
            });
            shown.truncate(MAX_SHOWN);
        }
        shown.sort_by_key(|o| (o.call, o.op));
        let mut timeline = String::new();
        for o in &shown {
            let op = &history[o.op];
            let ret = match (o.ret, op.returned.as_ref()) {
                (Some(r), Some((_, out))) => format!("{r:?}] -> {out:?}"),
                (None, Some((r, out))) => {
                    format!("pending] (returned {out:?} later, at {r:?})")
                }
                _ => "pending] (never returned)".to_owned(),
            };
            let mark = if Some(o.op) == culprit {
                "!"
            } else if core.contains(&o.op) {
                "*"
            } else {
                " "
            };
            let _ = writeln!(
                timeline,
                " {mark} op {:<5} client {:<4} {:?}  [{:?} .. {ret}",
                o.op, op.client, op.input, o.call
            );
        }
        if hidden > 0 {
            let _ = writeln!(timeline, "  ... and {hidden} more operations not shown");
        }
        timeline.push_str(if minimal {
            "  (* = in the minimal non-linearizable core, ! = the operation whose return \
             made the history fail; others are context)\n"
        } else {
            "  (* = in the (unshrunk) non-linearizable core, ! = the operation whose return \
             made the history fail; others are context)\n"
        });
        Counterexample {
            culprit: culprit.map(OpId),
            ops: current.iter().map(|o| OpId(o.op)).collect(),
            pending: current
                .iter()
                .filter(|o| o.ret.is_none())
                .map(|o| OpId(o.op))
                .collect(),
            minimal,
            timeline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn linset_key_is_canonical(n in 1usize..300, ops in proptest::collection::vec((any::<bool>(), 0usize..300), 0..400)) {
            let mut set = LinSet::new(n);
            let mut model = std::collections::BTreeSet::new();
            for (add, i) in ops {
                let i = i % n;
                if add { set.set(i); model.insert(i); } else { set.clear(i); model.remove(&i); }
                // Rebuild from scratch in another order: the key must be the same.
                let mut fresh = LinSet::new(n);
                for &j in model.iter().rev() { fresh.set(j); }
                prop_assert_eq!(set.key(), fresh.key());
                for j in 0..n { prop_assert_eq!(set.contains(j), model.contains(&j)); }
            }
        }
    }

    #[test]
    fn empty_partition_and_all_pending_are_linearizable() {
        let model = RegisterModel { initial: 0u8 };
        let mut h = History::new();
        for i in 0..30 {
            h.invoke(i, RegisterInput::Write(i as u8), Instant::from_millis(i));
        }
        assert!(check(&model, &h).is_linearizable());
    }
}
