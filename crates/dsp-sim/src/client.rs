//! Simulated clients that record a [`History`] of their operations.

use std::collections::BTreeMap;
use std::time::Duration;

use dsp_core::{DetRng, Instant, NodeId, Protocol, RequestId};

use crate::lin::{History, OpId};
use crate::sim::{Reply, Sim};
use crate::{Error, Result};

/// A closed-loop client workload for [`Recorder::drive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Number of clients, numbered `0..clients`. Each has at most one operation in flight.
    pub clients: u64,
    /// How long to run, in virtual time.
    pub duration: Duration,
    /// How often idle clients issue their next operation. Default 10 ms.
    pub tick: Duration,
    /// A client gives up on an operation after this long (it stays pending in the history)
    /// and moves on. Default 1 s.
    pub timeout: Duration,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            clients: 3,
            duration: Duration::from_secs(1),
            tick: Duration::from_millis(10),
            timeout: Duration::from_secs(1),
        }
    }
}

impl Workload {
    /// Checks that there is a client and the tick is not zero.
    pub fn validate(&self) -> Result<()> {
        if self.clients == 0 || self.tick.is_zero() {
            return Err(Error::InvalidConfig(
                "a workload needs at least one client and a non-zero tick".into(),
            ));
        }
        Ok(())
    }
}

/// Issues client requests into a [`Sim`] and records each as an operation of a [`History`],
/// with the virtual time it was sent and the virtual time its reply arrived.
///
/// Each operation carries a model-level input `I` (what the linearizability [`Model`] sees)
/// next to the protocol's own request. [`Recorder::collect`] matches replies to operations
/// and maps each response to a model-level output `O`. An operation whose reply never comes
/// stays pending: the checker lets it take effect or not.
///
/// [`Model`]: crate::lin::Model
#[derive(Debug)]
pub struct Recorder<I, O> {
    history: History<I, O>,
    pending: BTreeMap<RequestId, (OpId, u64)>,
    busy: BTreeMap<u64, RequestId>,
}

impl<I, O> Default for Recorder<I, O> {
    fn default() -> Self {
        Self {
            history: History::new(),
            pending: BTreeMap::new(),
            busy: BTreeMap::new(),
        }
    }
}

impl<I, O> Recorder<I, O> {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `request` to `to` on behalf of `client` and records the invocation of `input` now.
    pub fn invoke<P: Protocol>(
        &mut self,
        sim: &mut Sim<P>,
        client: u64,
        to: NodeId,
        input: I,
        request: P::Request,
    ) -> RequestId {
        let op = self.history.invoke(client, input, sim.now());
        let id = sim.request(to, request);
        self.pending.insert(id, (op, client));
        self.busy.insert(client, id);
        id
    }

    /// Takes the sim's replies, completing the matching operations at their arrival times.
    ///
    /// `output` maps a response to the model's output; `None` means the response does not say
    /// what happened (e.g. "not the leader, try elsewhere" when the request may have been
    /// forwarded), and the operation stays pending. Either way the client becomes free.
    /// Replies to requests not issued through this recorder are returned.
    pub fn collect<P: Protocol>(
        &mut self,
        sim: &mut Sim<P>,
        mut output: impl FnMut(&I, &P::Response) -> Option<O>,
    ) -> Vec<Reply<P>> {
        let mut foreign = Vec::new();
        for reply in sim.take_replies_timed() {
            let Some((op, client)) = self.pending.remove(&reply.id) else {
                foreign.push(reply);
                continue;
            };
            if self.busy.get(&client) == Some(&reply.id) {
                self.busy.remove(&client);
            }
            let input = &self.history.ops()[op.0].input;
            if let Some(out) = output(input, &reply.response) {
                // Cannot fail: the op is known, pending, and replies arrive after their call.
                let _ = self.history.complete(op, out, reply.at);
            }
        }
        foreign
    }

    /// Gives up waiting for the client's current operation (a timeout): it stays pending in
    /// the history (a late reply still completes it) and the client is free again.
    pub fn abandon(&mut self, client: u64) -> Option<RequestId> {
        self.busy.remove(&client)
    }

    /// The request the client is waiting for, if any.
    pub fn waiting(&self, client: u64) -> Option<RequestId> {
        self.busy.get(&client).copied()
    }

    /// When the client's current operation was invoked, if it is waiting.
    pub fn waiting_since(&self, client: u64) -> Option<Instant> {
        let id = self.busy.get(&client)?;
        let (op, _) = self.pending.get(id)?;
        Some(self.history.ops()[op.0].call)
    }

    /// Whether the client is waiting for a reply.
    pub fn is_busy(&self, client: u64) -> bool {
        self.busy.contains_key(&client)
    }

    /// Runs `workload` against `sim`: every tick, each idle client calls `issue(rng, client)`
    /// for its next operation (`None` to stay idle this tick), which names the node to send it
    /// to, the model input and the protocol request; replies are collected with `output` (as in
    /// [`Recorder::collect`]); operations older than the timeout are abandoned. Replies to
    /// requests not issued through this recorder are dropped.
    ///
    /// Stops early with the simulation's error (an invariant violation, the step limit).
    pub fn drive<P: Protocol>(
        &mut self,
        sim: &mut Sim<P>,
        workload: &Workload,
        rng: &mut DetRng,
        mut issue: impl FnMut(&mut DetRng, u64) -> Option<(NodeId, I, P::Request)>,
        mut output: impl FnMut(&I, &P::Response) -> Option<O>,
    ) -> Result<()> {
        workload.validate()?;
        let end = sim.now() + workload.duration;
        while sim.now() < end {
            for client in 0..workload.clients {
                if let Some(since) = self.waiting_since(client)
                    && sim.now() - since >= workload.timeout
                {
                    self.abandon(client);
                }
                if !self.is_busy(client)
                    && let Some((to, input, request)) = issue(rng, client)
                {
                    self.invoke(sim, client, to, input, request);
                }
            }
            let step = workload.tick.min(end - sim.now());
            sim.run_for(step)?;
            self.collect(sim, &mut output);
        }
        Ok(())
    }

    /// The history so far.
    pub fn history(&self) -> &History<I, O> {
        &self.history
    }

    /// The history, consuming the recorder.
    pub fn into_history(self) -> History<I, O> {
        self.history
    }
}
