import Foundation
import SluiceCore
import SluiceSimulation

/// `sluice bench-routing --prompt-keys`: what reading a prompt for routing costs per KB, for
/// chat bodies whose system prompt is 1 to 220 KB (with a `\n` escape every line, as JSON
/// encoders write prompts), beside the way this gateway read them before (a `JSONValue` tree,
/// messages joined into a `String`, the simulator's tokenizer over all of it) as a baseline.
enum BenchPromptKeys {
    static func run(rounds: Int, sizes: [Int]) {
        print("prompt key extraction, ns per KB of body (and µs per request); \(rounds) rounds of 1 MiB of bodies per size")
        print("| body | hash alone (the body's bytes, no JSON) | validating scan (model, user, prompt located) | + `prefix` key (first 1,024 bytes hashed) | + cache-aware chain (whole prompt hashed) | + cache-aware pick (index looked up, recorded) | before: tree + tokenizer `prefix` key | before / now (`prefix`) |")
        print("|---|---|---|---|---|---|---|---|")
        for kilobytes in sizes {
            let bodies = (0..<8).map { body(kilobytes: kilobytes, variant: $0) }
            let bytes = bodies[0].count
            let repeats = max(1, rounds * (1 << 20) / bytes)
            let raw = measure(bodies, repeats) { body in
                var hasher = PromptHasher()
                body.withUnsafeBytes { hasher.feed($0) }
                return hasher.chain().blocks.count
            }
            let scan = measure(bodies, repeats) { body in
                body.withUnsafeBytes { raw in (try? JSONFieldScanner.completionFacts(in: raw))?.promptStrings.count ?? 0 }
            }
            let prefix = measure(bodies, repeats) { body in
                body.withUnsafeBytes { raw in Int(truncatingIfNeeded: hash(raw, limit: 1024).prefixHash()) }
            }
            let chain = measure(bodies, repeats) { body in
                body.withUnsafeBytes { raw in hash(raw, limit: .max).chain().blocks.count }
            }
            let policy = CacheAwarePolicy()
            let snapshot = PoolSnapshot(replicas: (0..<4).map { Replica(id: ReplicaID(host: "10.4.0.\($0)", port: 8000)) }, withRing: true)
            var now: UInt64 = 0
            let pick = measure(bodies, repeats) { body in
                let prompt = body.withUnsafeBytes { raw in hash(raw, limit: .max).chain() }
                now += 1
                return policy.choose(RoutingFacts(key: nil, prompt: prompt), in: snapshot, now: now)?.replica.id.port ?? 0
            }
            let before = measure(bodies, max(1, repeats / 20)) { body in legacyPrefixKey(body) }
            let perKB = { (nanos: Double) in String(format: "%.0f (%.1f)", nanos / (Double(bytes) / 1024), nanos / 1000) }
            print("| \(kilobytes) KB | \(perKB(raw)) | \(perKB(scan)) | \(perKB(prefix)) | \(perKB(chain)) | \(perKB(pick)) | \(perKB(before)) | \(String(format: "%.0f×", before / prefix)) |")
        }
    }

    private static func hash(_ raw: UnsafeRawBufferPointer, limit: Int) -> PromptHasher {
        guard let facts = try? JSONFieldScanner.completionFacts(in: raw) else { return PromptHasher() }
        var hasher = limit == .max ? PromptHasher(expectedBytes: facts.textBytes) : PromptHasher(prefix: limit)
        facts.feedPrompt(from: raw, into: &hasher)
        return hasher
    }

    /// Nanoseconds per body, over `repeats` passes through `bodies`.
    private static func measure(_ bodies: [[UInt8]], _ repeats: Int, _ work: ([UInt8]) -> Int) -> Double {
        var sink = 0
        for body in bodies { sink &+= work(body) }  // warm-up
        let start = ContinuousClock.now
        for index in 0..<repeats { sink &+= work(bodies[index % bodies.count]) }
        let elapsed = ContinuousClock.now - start
        if sink == 42 { print("") }  // keeps the work from being optimized away
        return (Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9) / Double(repeats)
    }

    /// A chat body: a system prompt of about `kilobytes` KB (lines of prose, JSON-escaped
    /// newlines between them) that differs per `variant` from its first line, and a question.
    static func body(kilobytes: Int, variant: Int) -> [UInt8] {
        var system = "Context \(variant): the documents below are the only source to cite.\\n"
        var line = 0
        while system.utf8.count < kilobytes * 1024 {
            system += #"Paragraph \#(line) says the \"policy\" applies to every tenant, pool and replica in the fleet.\n"#
            line += 1
        }
        let json = #"{"model":"m","messages":[{"role":"system","content":"\#(system)"},{"role":"user","content":"What does the policy say?"}],"user":"u-\#(variant)","max_tokens":8}"#
        return Array(json.utf8)
    }

    /// The previous reading: the body copied, parsed into a tree, the messages joined, the whole
    /// text tokenized by the simulator's tokenizer, its first 256 tokens hashed.
    private static func legacyPrefixKey(_ body: [UInt8]) -> Int {
        guard let object = try? JSONValue.parse(Array(body)), let messages = object["messages"]?.array else { return 0 }
        let text = messages.compactMap { $0["content"]?.string }.joined(separator: "\n")
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for token in SimTokenizer.tokens(text).prefix(256) {
            withUnsafeBytes(of: token.littleEndian) { hash = SimTokenizer.fnv1a($0, seed: hash) }
        }
        return Int(truncatingIfNeeded: hash)
    }
}
