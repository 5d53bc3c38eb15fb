import ArgumentParser
import Foundation
import SluiceCore

/// `sluice bench-routing`: what one routing decision costs, per policy and pool size, and how
/// evenly the hashing policies spread load with and without the bound. Run on a release build;
/// figures are printed, not asserted (machines are noisy).
struct BenchRoutingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-routing", abstract: "Measure routing-policy cost and load spread (use a release build).",
        shouldDisplay: false)

    @Option(name: .long, help: "Picks per measurement.")
    var picks = 1_000_000

    @Flag(name: .long, help: "Only the prompt key extraction benchmark.")
    var promptKeys = false

    @Option(name: .long, help: "MiB of bodies per size in the prompt key benchmark.")
    var promptRounds = 64

    @Option(name: .long, help: "Body sizes (KB) in the prompt key benchmark, comma-separated.")
    var promptSizes = "1,10,50,220"

    func run() throws {
        BenchPromptKeys.run(rounds: promptRounds, sizes: promptSizes.split(separator: ",").compactMap { Int($0) })
        if promptKeys { return }
        print("")
        print("ns per pick (\(picks) picks, keys from 100,000 sessions; in-flight counts held at realistic levels)")
        print("| policy | 4 replicas | 64 replicas | 1,024 replicas |")
        print("|---|---|---|---|")
        // (Cache-aware twice: 100,000 sessions cycling through its 65,536-key table are mostly
        // placements; 10,000 are mostly affinity.)
        let policies: [(String, any BalancingPolicy, Int)] = [
            ("round-robin", RoundRobinPolicy(), 100_000), ("random", RandomPolicy(), 100_000), ("least-queue", LeastQueuePolicy(), 100_000),
            ("consistent-hash (bounded 1.25)", ConsistentHashPolicy(loadFactor: 1.25), 100_000),
            ("cache-aware, 100,000 sessions (mostly placements)", CacheAwarePolicy(), 100_000),
            ("cache-aware, 10,000 sessions (mostly affinity)", CacheAwarePolicy(), 10_000),
        ]
        let allKeys = (0..<100_000).map { "session-\($0)" }
        for (name, policy, sessions) in policies {
            let keys = Array(allKeys.prefix(sessions))
            var row = "| \(name) |"
            for size in [4, 64, 1024] {
                let load = PoolLoad()
                let snapshot = PoolSnapshot(
                    replicas: (0..<size).map { Replica(id: ReplicaID(host: "10.1.\($0 / 256).\($0 % 256)", port: 8000), poolLoad: load) },
                    withRing: policy.needsRing, poolLoad: load)
                // A steady state: each replica has a few requests in flight and a reported queue.
                for (index, replica) in snapshot.replicas.enumerated() {
                    for _ in 0..<(index % 4) { replica.requestStarted() }
                    replica.recordReportedQueue(waiting: index % 3, at: 1)
                }
                var generator = SplitMix64(seed: 1)
                var sink = 0
                let start = ContinuousClock.now
                for index in 0..<picks {
                    let facts = RoutingFacts(key: keys[index % keys.count], random: generator.next())
                    if let choice = policy.choose(facts, in: snapshot, now: 2) { sink &+= choice.replica.id.port }
                }
                let elapsed = ContinuousClock.now - start
                let nanos = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
                row += " \(String(format: "%.0f", nanos / Double(picks))) |"
                if sink == 42 { print("") }  // keeps the loop from being optimized away
            }
            print(row)
        }

        // What a client without a session key adds: the prompt's block chain, cut and hashed by
        // the gateway, and a pick that looks the chain up and records it. Conversations over a
        // 4 KiB system prompt, each turn a new 256-byte question on the conversation so far.
        let system = String(repeating: "You are a helpful assistant. Answer briefly and cite the policy. ", count: 62)
        let promptPicks = max(1, picks / 20)
        let chainPolicy = CacheAwarePolicy()
        let chainSnapshot = PoolSnapshot(replicas: (0..<4).map { Replica(id: ReplicaID(host: "10.3.0.\($0)", port: 8000)) }, withRing: true)
        var conversations = Array(repeating: system, count: 256)
        var chainSink = 0
        var promptBytes = 0
        let chainStart = ContinuousClock.now
        for index in 0..<promptPicks {
            let slot = index % conversations.count
            if conversations[slot].utf8.count > 16_384 { conversations[slot] = system }
            conversations[slot] += "\nquestion \(index): " + String(repeating: "and why is that so? ", count: 12)
            promptBytes += conversations[slot].utf8.count
            let prompt = PromptChain(conversations[slot], anchorLength: system.utf8.count + 20)
            if let choice = chainPolicy.choose(RoutingFacts(key: "p:prefix", prompt: prompt), in: chainSnapshot, now: UInt64(index)) {
                chainSink &+= choice.replica.id.port
            }
        }
        let chainElapsed = ContinuousClock.now - chainStart
        let chainNanos = Double(chainElapsed.components.seconds) * 1e9 + Double(chainElapsed.components.attoseconds) / 1e9
        print("\ncache-aware following prompts (256 conversations over a \(system.utf8.count)-byte system prompt, \(promptBytes / promptPicks) bytes a prompt on average; chain cut and hashed, looked up, recorded; JSON parsing not included): \(String(format: "%.0f", chainNanos / Double(promptPicks))) ns per request, \(String(format: "%.0f", chainNanos / (Double(promptBytes) / 1024))) ns per KB")
        if chainSink == 42 { print("") }

        print("\nload spread: peak / mean in-flight over 200,000 arrivals and departures on 16 replicas,")
        print("keys Zipf-like (a quarter of requests from 3 hot sessions, the rest from 5,000)")
        print("| structure | peak / mean |")
        print("|---|---|")
        for (name, factor) in [("ring, 160 virtual nodes, unbounded", 1_000_000.0), ("ring, bounded, load_factor 1.25", 1.25), ("ring, bounded, load_factor 1.5", 1.5)] {
            print("| \(name) | \(String(format: "%.2f", spread(loadFactor: factor))) |")
        }
        print("| cache-aware (defaults; no slots reported, so in-flight past the 1.25 bound + max_queue 8 saturates) | \(String(format: "%.2f", spread(policy: CacheAwarePolicy()))) |")
        print("| least-queue (no affinity) | \(String(format: "%.2f", spread(policy: LeastQueuePolicy()))) |")
    }

    /// Average over time of (max in-flight / mean in-flight) under a random workload.
    private func spread(loadFactor: Double) -> Double {
        spread(policy: ConsistentHashPolicy(loadFactor: loadFactor))
    }

    private func spread(policy: any BalancingPolicy) -> Double {
        let load = PoolLoad()
        let snapshot = PoolSnapshot(
            replicas: (0..<16).map { Replica(id: ReplicaID(host: "10.2.0.\($0)", port: 8000), poolLoad: load) }, withRing: true, poolLoad: load)
        var generator = SplitMix64(seed: 7)
        var active: [Replica] = []
        var ratioSum = 0.0
        var samples = 0
        for step in 0..<200_000 {
            if active.count > 64, generator.next() % 100 < 50 {
                active.remove(at: Int(generator.next() % UInt64(active.count))).requestFinished()
            } else {
                let key = generator.next() % 4 == 0 ? "hot-\(generator.next() % 3)" : "cold-\(generator.next() % 5000)"
                guard let replica = policy.pick(RoutingFacts(key: key, random: generator.next()), in: snapshot, now: 1) else { continue }
                replica.requestStarted()
                active.append(replica)
            }
            if step > 10_000, step % 100 == 0 {
                let loads = snapshot.replicas.map(\.inFlight)
                let mean = Double(loads.reduce(0, +)) / Double(loads.count)
                if mean > 0 {
                    ratioSum += Double(loads.max()!) / mean
                    samples += 1
                }
            }
        }
        for replica in active { replica.requestFinished() }
        return ratioSum / Double(max(1, samples))
    }
}
