//! Key-range partitions (CockroachDB ranges, HBase regions, Bigtable tablets).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;

use dsp_core::NodeId;

use crate::error::{Error, Result};
use crate::placement::Placement;

/// The identity of one key range; never reused.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct RangeId(pub u64);

impl fmt::Display for RangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// One range `[start, end)` of the key space and the nodes holding it (leaseholder first).
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct KeyRange {
    /// The range's id.
    pub id: RangeId,
    /// The first key in the range.
    pub start: Vec<u8>,
    /// The first key after the range; `None` for the last range (unbounded).
    pub end: Option<Vec<u8>>,
    /// The replicas, owner (leaseholder) first; never empty.
    pub replicas: Vec<NodeId>,
}

impl KeyRange {
    /// Whether `key` falls in this range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// The owner (leaseholder).
    pub fn owner(&self) -> NodeId {
        self.replicas[0]
    }
}

/// The part of a scan `[start, end)` served by one range.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ScanSpan {
    /// The range.
    pub range: RangeId,
    /// Its owner.
    pub owner: NodeId,
    /// The first key to scan in this range.
    pub start: Vec<u8>,
    /// The key to stop before.
    pub end: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    id: RangeId,
    replicas: Vec<NodeId>,
}

/// Sorted, contiguous key ranges covering the whole key space, with split and merge.
///
/// Keys are byte strings compared lexicographically; the first range starts at the empty key
/// and the last is unbounded, so every key has exactly one range.
///
/// ```
/// use dsp_core::NodeId;
/// use dsp_shard::{KeyRanges, Placement};
///
/// let mut ranges = KeyRanges::new(vec![NodeId(1)])?;
/// let (_, right) = ranges.split(b"m")?;
/// ranges.set_replicas(right, vec![NodeId(2), NodeId(3)])?;
/// assert_eq!(ranges.owner(b"apple")?, NodeId(1));
/// assert_eq!(ranges.owner(b"zebra")?, NodeId(2));
///
/// let plan = ranges.plan_scan(b"k", b"p")?; // spans both ranges
/// assert_eq!(plan.len(), 2);
/// assert_eq!((plan[0].end.as_slice(), plan[1].start.as_slice()), (&b"m"[..], &b"m"[..]));
/// # Ok::<(), dsp_shard::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRanges {
    /// The range starting at the empty key.
    first: Entry,
    /// Start key (never empty) -> range, for every other range.
    rest: BTreeMap<Vec<u8>, Entry>,
    next_id: u64,
}

impl KeyRanges {
    /// One range covering every key, held by `replicas` (owner first).
    ///
    /// # Errors
    /// [`Error::NoNodes`] if `replicas` is empty, [`Error::DuplicateNode`] if a node repeats.
    pub fn new(replicas: Vec<NodeId>) -> Result<Self> {
        check_replicas(&replicas)?;
        Ok(Self {
            first: Entry {
                id: RangeId(1),
                replicas,
            },
            rest: BTreeMap::new(),
            next_id: 2,
        })
    }

    /// The number of ranges (at least one).
    pub fn len(&self) -> usize {
        self.rest.len() + 1
    }

    /// Always `false`: the key space is always covered by at least one range.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every range as `(start, entry)`, in key order.
    fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> + '_ {
        std::iter::once((&[][..], &self.first))
            .chain(self.rest.iter().map(|(k, e)| (k.as_slice(), e)))
    }

    /// The start of the range after the one starting at `start`.
    fn next_start(&self, start: &[u8]) -> Option<&Vec<u8>> {
        self.rest
            .range::<[u8], _>((Bound::Excluded(start), Bound::Unbounded))
            .next()
            .map(|(k, _)| k)
    }

    fn make(&self, start: &[u8], entry: &Entry) -> KeyRange {
        KeyRange {
            id: entry.id,
            start: start.to_vec(),
            end: self.next_start(start).cloned(),
            replicas: entry.replicas.clone(),
        }
    }

    fn entry_for(&self, key: &[u8]) -> (&[u8], &Entry) {
        match self
            .rest
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
        {
            Some((k, e)) => (k.as_slice(), e),
            None => (&[][..], &self.first),
        }
    }

    /// The range holding `key`.
    pub fn lookup(&self, key: &[u8]) -> KeyRange {
        let (start, entry) = self.entry_for(key);
        self.make(start, entry)
    }

    /// Every range, in key order.
    pub fn ranges(&self) -> Vec<KeyRange> {
        self.iter().map(|(s, e)| self.make(s, e)).collect()
    }

    fn find(&self, id: RangeId) -> Result<(&[u8], &Entry)> {
        self.iter()
            .find(|(_, e)| e.id == id)
            .ok_or(Error::UnknownRange { id })
    }

    fn entry_mut(&mut self, start: &[u8]) -> Option<&mut Entry> {
        if start.is_empty() {
            Some(&mut self.first)
        } else {
            self.rest.get_mut(start)
        }
    }

    /// The range with id `id`.
    ///
    /// # Errors
    /// [`Error::UnknownRange`].
    pub fn get(&self, id: RangeId) -> Result<KeyRange> {
        let (start, entry) = self.find(id)?;
        Ok(self.make(start, entry))
    }

    /// The ranges a scan of `[start, end)` must visit, each clipped to the scan, in key order.
    ///
    /// # Errors
    /// [`Error::EmptyRange`] if `start >= end`.
    pub fn plan_scan(&self, start: &[u8], end: &[u8]) -> Result<Vec<ScanSpan>> {
        if start >= end {
            return Err(Error::EmptyRange {
                start: start.to_vec(),
                end: end.to_vec(),
            });
        }
        let (first_start, first_entry) = self.entry_for(start);
        // The range holding `start`, then every range starting inside (start, end).
        let following = self
            .rest
            .range::<[u8], _>((Bound::Excluded(first_start), Bound::Excluded(end)))
            .map(|(k, e)| (k.as_slice(), e));
        let mut iter = std::iter::once((first_start, first_entry))
            .chain(following)
            .peekable();
        let mut spans = Vec::new();
        while let Some((range_start, entry)) = iter.next() {
            let span_start = range_start.max(start).to_vec();
            let span_end = match iter.peek() {
                Some((next_start, _)) => next_start.to_vec(),
                None => end.to_vec(),
            };
            spans.push(ScanSpan {
                range: entry.id,
                owner: entry.replicas[0],
                start: span_start,
                end: span_end,
            });
        }
        Ok(spans)
    }

    /// Splits the range containing `at` into `[start, at)` (keeping its id) and `[at, end)` (a
    /// new id, same replicas). Returns `(left, right)`.
    ///
    /// # Errors
    /// [`Error::InvalidSplit`] if `at` is already a range start (including the empty key).
    pub fn split(&mut self, at: &[u8]) -> Result<(RangeId, RangeId)> {
        if at.is_empty() || self.rest.contains_key(at) {
            return Err(Error::InvalidSplit { key: at.to_vec() });
        }
        let (_, entry) = self.entry_for(at);
        let left = entry.id;
        let replicas = entry.replicas.clone();
        let right = RangeId(self.next_id);
        self.next_id += 1;
        self.rest.insert(
            at.to_vec(),
            Entry {
                id: right,
                replicas,
            },
        );
        Ok((left, right))
    }

    /// Merges range `left` with its right-hand neighbour; the result keeps `left`'s id and
    /// replicas. Returns the id of the range that was absorbed.
    ///
    /// # Errors
    /// [`Error::UnknownRange`], or [`Error::NoNeighbour`] if `left` is the last range.
    pub fn merge(&mut self, left: RangeId) -> Result<RangeId> {
        let (start, _) = self.find(left)?;
        let right_start = self
            .next_start(start)
            .cloned()
            .ok_or(Error::NoNeighbour { id: left })?;
        self.rest
            .remove(&right_start)
            .map(|e| e.id)
            .ok_or(Error::NoNeighbour { id: left })
    }

    /// Replaces the replicas of range `id` (owner first).
    ///
    /// # Errors
    /// [`Error::UnknownRange`], [`Error::NoNodes`] if `replicas` is empty,
    /// [`Error::DuplicateNode`] if a node repeats.
    pub fn set_replicas(&mut self, id: RangeId, replicas: Vec<NodeId>) -> Result<()> {
        check_replicas(&replicas)?;
        let start = self.find(id)?.0.to_vec();
        if let Some(entry) = self.entry_mut(&start) {
            entry.replicas = replicas;
        }
        Ok(())
    }
}

fn check_replicas(replicas: &[NodeId]) -> Result<()> {
    if replicas.is_empty() {
        return Err(Error::NoNodes);
    }
    for (i, node) in replicas.iter().enumerate() {
        if replicas[..i].contains(node) {
            return Err(Error::DuplicateNode { node: *node });
        }
    }
    Ok(())
}

impl Placement for KeyRanges {
    fn owner(&self, key: &[u8]) -> Result<NodeId> {
        Ok(self.entry_for(key).1.replicas[0])
    }

    fn replicas_into(&self, key: &[u8], n: usize, out: &mut Vec<NodeId>) -> Result<()> {
        out.clear();
        out.extend(self.entry_for(key).1.replicas.iter().take(n).copied());
        Ok(())
    }

    fn nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self
            .iter()
            .flat_map(|(_, e)| e.replicas.iter().copied())
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn lookup_after_splits() {
        let mut r = KeyRanges::new(vec![NodeId(1)]).unwrap();
        let (a, b) = r.split(b"g").unwrap();
        let (b2, c) = r.split(b"p").unwrap();
        assert_eq!(b, b2);
        assert_eq!(r.lookup(b"").id, a);
        assert_eq!(r.lookup(b"f\xff").id, a);
        assert_eq!(r.lookup(b"g").id, b);
        assert_eq!(r.lookup(b"o").id, b);
        assert_eq!(r.lookup(b"p").id, c);
        assert_eq!(r.lookup(b"\xff\xff").end, None);
        let all = r.ranges();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].start, b"g".to_vec());
        assert_eq!(all[1].end, Some(b"p".to_vec()));
        assert!(all[1].contains(b"h") && !all[1].contains(b"p"));
    }

    #[test]
    fn bad_splits_and_merges_are_typed() {
        let mut r = KeyRanges::new(vec![NodeId(1)]).unwrap();
        assert_eq!(r.split(b""), Err(Error::InvalidSplit { key: Vec::new() }));
        let (left, right) = r.split(b"k").unwrap();
        assert_eq!(
            r.split(b"k"),
            Err(Error::InvalidSplit { key: b"k".to_vec() })
        );
        assert_eq!(r.merge(right), Err(Error::NoNeighbour { id: right }));
        assert_eq!(
            r.merge(RangeId(99)),
            Err(Error::UnknownRange { id: RangeId(99) })
        );
        assert_eq!(r.merge(left), Ok(right));
        assert_eq!(r.len(), 1);
        assert_eq!(r.lookup(b"z").id, left);
        assert!(matches!(
            r.plan_scan(b"b", b"a"),
            Err(Error::EmptyRange { .. })
        ));
        assert!(matches!(
            r.plan_scan(b"a", b"a"),
            Err(Error::EmptyRange { .. })
        ));
        assert_eq!(KeyRanges::new(vec![]), Err(Error::NoNodes));
        assert_eq!(
            KeyRanges::new(vec![NodeId(1), NodeId(1)]),
            Err(Error::DuplicateNode { node: NodeId(1) })
        );
    }

    #[test]
    fn scan_plan_clips_to_bounds() {
        let mut r = KeyRanges::new(vec![NodeId(1)]).unwrap();
        r.split(b"c").unwrap();
        r.split(b"f").unwrap();
        r.split(b"x").unwrap();
        let plan = r.plan_scan(b"b", b"g").unwrap();
        let bounds: Vec<_> = plan
            .iter()
            .map(|s| (s.start.clone(), s.end.clone()))
            .collect();
        assert_eq!(
            bounds,
            vec![
                (b"b".to_vec(), b"c".to_vec()),
                (b"c".to_vec(), b"f".to_vec()),
                (b"f".to_vec(), b"g".to_vec())
            ]
        );
        // A scan ending exactly at a boundary does not touch the next range.
        assert_eq!(r.plan_scan(b"c", b"f").unwrap().len(), 1);
        assert_eq!(r.plan_scan(b"y", b"z").unwrap().len(), 1);
    }

    #[test]
    fn replicas_follow_the_range() {
        let mut r = KeyRanges::new(vec![NodeId(1), NodeId(2)]).unwrap();
        let (_, right) = r.split(b"m").unwrap();
        r.set_replicas(right, vec![NodeId(3), NodeId(4), NodeId(5)])
            .unwrap();
        assert_eq!(r.replicas(b"a", 3).unwrap(), vec![NodeId(1), NodeId(2)]);
        assert_eq!(r.replicas(b"n", 2).unwrap(), vec![NodeId(3), NodeId(4)]);
        assert_eq!(r.nodes().len(), 5);
        assert_eq!(r.set_replicas(right, vec![]), Err(Error::NoNodes));
    }
}
