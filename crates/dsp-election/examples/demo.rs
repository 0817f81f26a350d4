//! Five election nodes as separate OS processes on 127.0.0.1: elect, SIGKILL the leader,
//! re-elect, restart it, restart a follower, then stop everything and print a summary.
//!
//! Run with `cargo run --release -p dsp-election --example demo` (both algorithms), or add
//! `-- --algo bully` / `-- --algo ring` for one. The same executable is re-invoked with `--node`
//! for each node process; a node exits when its standard input closes, so nothing outlives the
//! demo even if the demo itself is killed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use dsp_core::{DetRng, NodeId};
use dsp_election::{
    Bully, ElectionConfig, Event, Fence, Generation, LeaderView, Persist, Request, Response, Ring,
    Status,
};
use dsp_net::{ClientConfig, FileStorage, NetConfig, NodeClient, spawn};

const NODES: u64 = 5;
/// Every wait in the demo gives up after this long.
const WAIT: Duration = Duration::from_secs(10);

static START: OnceLock<Instant> = OnceLock::new();

fn elapsed() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algo {
    Bully,
    Ring,
}

impl Algo {
    fn name(self) -> &'static str {
        match self {
            Algo::Bully => "bully",
            Algo::Ring => "ring",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "bully" => Ok(Algo::Bully),
            "ring" => Ok(Algo::Ring),
            other => bail!("unknown algorithm {other:?} (expected bully or ring)"),
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--node") {
        return node_main(args[1..].to_vec());
    }
    let algos = match flag(&args, "--algo") {
        None | Some("both") => vec![Algo::Bully, Algo::Ring],
        Some(a) => vec![Algo::parse(a)?],
    };
    START.get_or_init(Instant::now);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut summaries = Vec::new();
    for algo in algos {
        summaries.push(rt.block_on(scenario(algo))?);
    }
    print_summary(&summaries);
    Ok(())
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

// ---------------------------------------------------------------------------------------------
// Node process
// ---------------------------------------------------------------------------------------------

/// `--node --algo A --data PATH --id N --listen ADDR --peer M=ADDR ...`: one election node.
fn node_main(args: Vec<String>) -> Result<()> {
    let (net, rest) = NetConfig::from_args(args)?;
    let algo = Algo::parse(flag(&rest, "--algo").context("--algo is required")?)?;
    let data = PathBuf::from(flag(&rest, "--data").context("--data is required")?);
    // The parent holds our stdin; when it goes away (even if it was SIGKILLed), so do we.
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match algo {
            Algo::Bully => run_node(net, &data, |i, c, r, d| Bully::recover(i, c, r, d)).await,
            Algo::Ring => run_node(net, &data, |i, c, r, d| Ring::recover(i, c, r, d)).await,
        }
    })
}

type Recover<P> = fn(NodeId, ElectionConfig, DetRng, &[Persist]) -> dsp_election::Result<P>;

async fn run_node<P>(net: NetConfig, data: &Path, recover: Recover<P>) -> Result<()>
where
    P: dsp_net::NetProtocol<Persist = Persist, Event = Event>,
{
    let id = net.id;
    let members: Vec<NodeId> = std::iter::once(id)
        .chain(net.peers.keys().copied())
        .collect();
    let config = ElectionConfig::with_members(members);
    config.validate(id)?;
    let storage = FileStorage::open(data)?;
    let seed = id.0 ^ (u64::from(std::process::id()) << 32);
    let (handle, mut events) = spawn(net, storage, move |durable: &[Persist]| {
        // Validated above, so this cannot fail.
        recover(id, config, DetRng::from_seed(seed), durable).expect("valid config")
    })
    .await?;
    while let Some(event) = events.recv().await {
        // One line per event; the demo prints the interesting ones.
        println!("{id} {}", describe(&event));
    }
    handle.shutdown().await?;
    Ok(())
}

fn describe(e: &Event) -> String {
    match e {
        Event::BecameLeader { generation } => format!("became leader in {generation}"),
        Event::LeaderElected { leader, generation } => format!("follows {leader} in {generation}"),
        Event::LeaderLost { leader, generation } => {
            format!("lost leader {leader} ({generation}): no heartbeat")
        }
        Event::SteppedDown { generation } => format!("stepped down from {generation}"),
        Event::ElectionStarted { generation } => format!("started an election (seen {generation})"),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster of child processes, with a guard that kills them all
// ---------------------------------------------------------------------------------------------

struct Cluster {
    algo: Algo,
    exe: PathBuf,
    dir: tempfile::TempDir,
    addrs: BTreeMap<NodeId, SocketAddr>,
    children: BTreeMap<NodeId, Child>,
    started: usize,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Cluster {
    fn new(algo: Algo) -> Result<Self> {
        let mut addrs = BTreeMap::new();
        for i in 1..=NODES {
            addrs.insert(NodeId(i), free_addr()?);
        }
        Ok(Self {
            algo,
            exe: std::env::current_exe()?,
            dir: tempfile::tempdir()?,
            addrs,
            children: BTreeMap::new(),
            started: 0,
        })
    }

    fn start(&mut self, id: NodeId) -> Result<u32> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--node")
            .args(["--algo", self.algo.name()])
            .arg("--data")
            .arg(self.dir.path().join(format!("{id}.log")))
            .args([
                "--id",
                &id.0.to_string(),
                "--listen",
                &self.addrs[&id].to_string(),
            ]);
        for (peer, addr) in &self.addrs {
            if *peer != id {
                cmd.args(["--peer", &format!("{}={addr}", peer.0)]);
            }
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {id}"))?;
        let pid = child.id();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if line.contains("became leader") || line.contains("lost leader") {
                        println!("    {:>6.2}s  | {line}", elapsed());
                    }
                }
            });
        }
        self.children.insert(id, child);
        self.started += 1;
        Ok(pid)
    }

    /// SIGKILL (on Unix, `Child::kill` sends SIGKILL) and reap.
    fn kill(&mut self, id: NodeId) -> Result<u32> {
        let mut child = self
            .children
            .remove(&id)
            .ok_or_else(|| anyhow!("{id} is not running"))?;
        let pid = child.id();
        child.kill()?;
        child.wait()?;
        Ok(pid)
    }

    fn stop_all(&mut self) -> Result<usize> {
        let mut stopped = 0;
        for (_, mut child) in std::mem::take(&mut self.children) {
            child.kill()?;
            child.wait()?;
            stopped += 1;
        }
        Ok(stopped)
    }
}

// ---------------------------------------------------------------------------------------------
// Querying nodes over TCP
// ---------------------------------------------------------------------------------------------

type Client = NodeClient<Bully>; // the request/response types are the same for both algorithms

async fn ask(addr: SocketAddr, request: Request) -> Option<Response> {
    let mut config = ClientConfig::new(addr);
    config.timeout = Duration::from_millis(300);
    config.connect_timeout = Duration::from_millis(300);
    let client = tokio::time::timeout(Duration::from_millis(400), Client::connect(config))
        .await
        .ok()?
        .ok()?;
    tokio::time::timeout(Duration::from_millis(400), client.request(request))
        .await
        .ok()?
        .ok()
}

async fn who_leads(addr: SocketAddr) -> Option<LeaderView> {
    match ask(addr, Request::WhoIsLeader).await {
        Some(Response::Leader(v)) => v,
        _ => None,
    }
}

async fn status(addr: SocketAddr) -> Option<Status> {
    match ask(addr, Request::Status).await {
        Some(Response::Status(s)) => Some(s),
        _ => None,
    }
}

/// Polls every running node until all report the same leader view satisfying `ok`.
async fn agreement(
    cluster: &Cluster,
    ok: impl Fn(&LeaderView) -> bool,
) -> Result<(LeaderView, Instant)> {
    let ids: Vec<NodeId> = cluster.children.keys().copied().collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut views = Vec::new();
        for id in &ids {
            views.push(who_leads(cluster.addrs[id]).await);
        }
        if let Some(Some(first)) = views.first().copied()
            && ok(&first)
            && views.iter().all(|v| *v == Some(first))
        {
            return Ok((first, Instant::now()));
        }
        if Instant::now() > deadline {
            bail!("no agreement within {WAIT:?}; views: {views:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------------------------

struct Summary {
    algo: Algo,
    first: LeaderView,
    first_ms: u128,
    killed: NodeId,
    second: LeaderView,
    reelect_ms: u128,
    restarted: LeaderView,
    restarted_durable: Generation,
    restart_ms: u128,
    follower: NodeId,
    rejoined: LeaderView,
    rejoin_ms: u128,
    fence: String,
    stopped: usize,
}

fn say(text: impl AsRef<str>) {
    println!("  {:>6.2}s  {}", elapsed(), text.as_ref());
}

async fn scenario(algo: Algo) -> Result<Summary> {
    println!(
        "\n== {} election: {NODES} node processes on 127.0.0.1 ==",
        algo.name()
    );
    let mut cluster = Cluster::new(algo)?;
    let t0 = Instant::now();
    let mut pids = Vec::new();
    for i in 1..=NODES {
        pids.push(format!("n{i}=pid {}", cluster.start(NodeId(i))?));
    }
    say(format!("started {}", pids.join(", ")));

    // 1. First election.
    let (first, at) = agreement(&cluster, |_| true).await?;
    let first_ms = at.duration_since(t0).as_millis();
    say(format!(
        "{} leads in {} (fencing token {}); all {NODES} nodes agree, {first_ms} ms after start",
        first.leader,
        first.generation,
        first.token()
    ));

    // 2. SIGKILL the leader.
    let killed = first.leader;
    let t_kill = Instant::now();
    let pid = cluster.kill(killed)?;
    say(format!("SIGKILL {killed} (pid {pid}), the leader"));
    let (second, at) = agreement(&cluster, |v| {
        v.leader != killed && v.generation > first.generation
    })
    .await?;
    let reelect_ms = at.duration_since(t_kill).as_millis();
    say(format!(
        "{} leads in {}; the {} survivors agree, {reelect_ms} ms after the kill \
         (heartbeat 100 ms, leader timeout 500-750 ms)",
        second.leader,
        second.generation,
        NODES - 1
    ));

    // 3. Restart the killed node from its storage.
    let t_restart = Instant::now();
    let pid = cluster.start(killed)?;
    say(format!(
        "restarted {killed} (pid {pid}) on the same port and storage file"
    ));
    let (restarted, at) = agreement(&cluster, |v| {
        v.generation > second.generation || {
            // Accept "nothing changed" too, if every node still follows the second leader.
            *v == second
        }
    })
    .await?;
    let restart_ms = at.duration_since(t_restart).as_millis();
    let restarted_durable = status(cluster.addrs[&killed])
        .await
        .map(|s| s.durable)
        .unwrap_or(Generation::ZERO);
    if restarted.leader == killed {
        say(format!(
            "{killed} took over again in {} after {restart_ms} ms: it is the highest id, and \
             {} lets the highest live id win, so a restarted higher node preempts the leader",
            restarted.generation,
            algo.name()
        ));
    } else {
        say(format!(
            "{killed} rejoined as a follower of {} in {} after {restart_ms} ms",
            restarted.leader, restarted.generation
        ));
    }
    say(format!(
        "{killed} recovered its generation floor {} from its file and minted above everything it \
         had seen; its durable generation is now {restarted_durable}",
        first.generation
    ));

    // 4. A follower crashes and comes back: it rejoins under the current leader.
    let follower = NodeId(2);
    let t_follower = Instant::now();
    let pid = cluster.kill(follower)?;
    say(format!(
        "SIGKILL {follower} (pid {pid}), a follower, and restart it"
    ));
    cluster.start(follower)?;
    let (rejoined, at) = agreement(&cluster, |v| v.leader == restarted.leader).await?;
    let rejoin_ms = at.duration_since(t_follower).as_millis();
    let same = if rejoined == restarted {
        "unchanged"
    } else {
        "re-announced"
    };
    say(format!(
        "{follower} rejoined as a follower of {} in {} ({same}), {rejoin_ms} ms after the kill",
        rejoined.leader, rejoined.generation
    ));

    // 5. What fencing buys: a resource that saw the newer token refuses the deposed leader's.
    let mut fence = Fence::new();
    let mut log = Vec::new();
    for (who, token) in [
        (first.leader, first.token()),
        (second.leader, second.token()),
        (first.leader, first.token()),
        (rejoined.leader, rejoined.token()),
    ] {
        let verdict = match fence.check(token) {
            Ok(()) => "ok",
            Err(_) => "REJECTED",
        };
        log.push(format!("{who}:{token} {verdict}"));
    }
    let fence_line = log.join(", ");
    say(format!("fenced resource: {fence_line}"));

    // 6. Stop everything.
    let stopped = cluster.stop_all()?;
    say(format!(
        "stopped all {stopped} running processes ({} started in total)",
        cluster.started
    ));
    Ok(Summary {
        algo,
        first,
        first_ms,
        killed,
        second,
        reelect_ms,
        restarted,
        restarted_durable,
        restart_ms,
        follower,
        rejoined,
        rejoin_ms,
        fence: fence_line,
        stopped,
    })
}

fn print_summary(all: &[Summary]) {
    println!("\n== summary ==");
    println!(
        "{:<6} {:<16} {:<28} {:<30} {:<26}",
        "algo",
        "first leader",
        "leader SIGKILLed -> new",
        "old leader restarted",
        "follower restarted"
    );
    for s in all {
        let restarted = if s.restarted.leader == s.killed {
            format!(
                "{} takes over {} {}ms",
                s.killed, s.restarted.generation, s.restart_ms
            )
        } else {
            format!(
                "{} follows {} {}ms",
                s.killed, s.restarted.leader, s.restart_ms
            )
        };
        println!(
            "{:<6} {:<16} {:<28} {:<30} {:<26}",
            s.algo.name(),
            format!("{} {} {}ms", s.first.leader, s.first.generation, s.first_ms),
            format!(
                "{} -> {} {} {}ms",
                s.killed, s.second.leader, s.second.generation, s.reelect_ms
            ),
            restarted,
            format!(
                "{} follows {} {}ms",
                s.follower, s.rejoined.leader, s.rejoin_ms
            ),
        );
    }
    for s in all {
        println!("{:<6} fence: {}", s.algo.name(), s.fence);
        println!(
            "{:<6} {}'s durable generation after its restart: {}; processes stopped at the end: {}",
            s.algo.name(),
            s.killed,
            s.restarted_durable,
            s.stopped
        );
    }
    println!(
        "Generations only grow; each is minted by one node and persisted before use, so no two \
         leaders ever share one.\nBully and ring cannot prevent split brain under a partition \
         (see the README): fencing tokens are what keep a deposed leader out."
    );
}
