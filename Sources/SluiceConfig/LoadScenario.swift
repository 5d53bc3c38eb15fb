import SluiceSimulation

/// A `sluice-load` scenario (`loadtest/scenarios/*.yaml`): an arrival plan in phases, a weighted
/// workload mix, tenants, and the run's limits. Every problem is reported with its key path and
/// line, like the gateway's config.
public struct LoadScenario: Sendable, Equatable {
    public var name: String
    public var plan: ArrivalPlan
    public var mix: [WeightedWorkload]
    public var tenants: [LoadTenant] = []
    public var seed: UInt64 = 1
    public var timeout: Duration = .seconds(30)
    public var maxConnections = 1024
    public var threads = 2

    public static func decode(yaml: String) throws(ConfigError) -> LoadScenario {
        let root = try composeYAML(yaml)
        var scenario = LoadScenario(name: "scenario", plan: ArrivalPlan(phases: []), mix: [])
        let allowed = ["name", "seed", "timeout", "max_connections", "threads", "phases", "workloads", "tenants"]
        if let keys = root.mapping(allowed: allowed) {
            if let value = keys["name"]?.string() { scenario.name = value }
            if let value = keys["seed"]?.int(in: 0...Int.max) { scenario.seed = UInt64(value) }
            if let value = keys["timeout"]?.duration(atLeast: .milliseconds(1)) { scenario.timeout = value }
            if let value = keys["max_connections"]?.int(in: 1...1_000_000) { scenario.maxConnections = value }
            if let value = keys["threads"]?.int(in: 1...256) { scenario.threads = value }
            if let node = keys["phases"] {
                scenario.plan = ArrivalPlan(phases: node.sequence()?.compactMap(decodePhase) ?? [])
                if scenario.plan.phases.isEmpty, node.diagnostics.issues.isEmpty { node.report("at least one phase is needed") }
            } else {
                root.report("missing required key \"phases\"")
            }
            if let node = keys["workloads"] {
                scenario.mix = node.sequence()?.compactMap(decodeWorkload) ?? []
                if !scenario.mix.contains(where: { $0.weight > 0 }), node.diagnostics.issues.isEmpty {
                    node.report("at least one workload with a weight above 0 is needed")
                }
            } else {
                root.report("missing required key \"workloads\"")
            }
            if let node = keys["tenants"] {
                scenario.tenants = node.sequence()?.compactMap(decodeTenant) ?? []
            }
        }
        if !root.diagnostics.issues.isEmpty { throw ConfigError(issues: root.diagnostics.issues) }
        return scenario
    }

    private static func decodePhase(_ node: NodeReader) -> ArrivalPlan.Phase? {
        guard let keys = node.mapping(allowed: ["duration", "process", "rate", "ramp", "step", "sine"]) else { return nil }
        guard let duration = keys["duration"]?.duration(atLeast: .milliseconds(1)) else {
            if keys["duration"] == nil { node.report("missing required key \"duration\"") }
            return nil
        }
        var process = ArrivalPlan.Process.poisson
        if let value = keys["process"]?.oneOf(["poisson", "uniform"]) { process = ArrivalPlan.Process(rawValue: value)! }
        let shapes = ["rate", "ramp", "step", "sine"].filter { keys[$0] != nil }
        guard shapes.count == 1 else {
            node.report(shapes.isEmpty ? "a phase needs one of rate, ramp, step, sine" : "a phase takes only one of rate, ramp, step, sine (found \(shapes.joined(separator: ", ")))")
            return nil
        }
        let shape: ArrivalPlan.Shape
        switch shapes[0] {
        case "rate":
            guard let rate = keys["rate"]!.double(in: 0...10_000_000) else { return nil }
            shape = .constant(rate: rate)
        case "ramp":
            guard let ramp = keys["ramp"]!.mapping(allowed: ["from", "to"]), let from = ramp["from"]?.double(in: 0...10_000_000),
                  let to = ramp["to"]?.double(in: 0...10_000_000)
            else { keys["ramp"]!.report("ramp needs from and to (requests/s)"); return nil }
            shape = .ramp(from: from, to: to)
        case "step":
            guard let step = keys["step"]!.mapping(allowed: ["from", "to", "at"]), let from = step["from"]?.double(in: 0...10_000_000),
                  let to = step["to"]?.double(in: 0...10_000_000), let at = step["at"]?.duration()
            else { keys["step"]!.report("step needs from, to (requests/s) and at (a duration)"); return nil }
            shape = .step(from: from, to: to, at: at)
        default:
            guard let sine = keys["sine"]!.mapping(allowed: ["mean", "amplitude", "period"]),
                  let mean = sine["mean"]?.double(in: 0...10_000_000), let amplitude = sine["amplitude"]?.double(in: 0...10_000_000),
                  let period = sine["period"]?.duration(atLeast: .milliseconds(1))
            else { keys["sine"]!.report("sine needs mean, amplitude (requests/s) and period (a duration)"); return nil }
            shape = .sine(mean: mean, amplitude: amplitude, period: period)
        }
        return ArrivalPlan.Phase(shape: shape, duration: duration, process: process)
    }

    private static func decodeWorkload(_ node: NodeReader) -> WeightedWorkload? {
        guard let keys = node.mapping(allowed: ["weight", "chat", "embeddings", "infer"]) else { return nil }
        let weight = keys["weight"]?.double(in: 0...1_000_000) ?? 1
        let kinds = ["chat", "embeddings", "infer"].filter { keys[$0] != nil }
        guard kinds.count == 1 else {
            node.report(kinds.isEmpty ? "a workload needs one of chat, embeddings, infer" : "a workload takes only one of chat, embeddings, infer")
            return nil
        }
        switch kinds[0] {
        case "chat":
            let allowed = ["model", "users", "system_prompts", "system_prompt_words", "user_words", "turns", "stream_fraction", "max_tokens", "session_header", "document_words", "restart"]
            guard let entries = keys["chat"]!.mapping(allowed: allowed) else { return nil }
            var chat = Workload.Chat()
            if let value = entries["model"]?.string() { chat.model = value }
            if let value = entries["users"]?.int(in: 1...1_000_000) { chat.users = value }
            if let value = entries["system_prompts"]?.int(in: 1...10_000) { chat.systemPrompts = value }
            if let value = entries["system_prompt_words"]?.int(in: 0...100_000) { chat.systemPromptWords = value }
            if let value = entries["user_words"]?.int(in: 1...100_000) { chat.userWords = value }
            if let value = entries["turns"]?.int(in: 1...10_000) { chat.turns = value }
            if let value = entries["stream_fraction"]?.double(in: 0...1) { chat.streamFraction = value }
            if let value = entries["max_tokens"]?.int(in: 1...100_000) { chat.maxTokens = value }
            if let value = entries["session_header"]?.bool() { chat.sessionHeader = value }
            if let value = entries["document_words"]?.int(in: 0...1_000_000) { chat.documentWords = value }
            if let value = entries["restart"]?.oneOf(["new_session", "same_session"]) { chat.restartSameSession = value == "same_session" }
            return WeightedWorkload(weight: weight, workload: .chat(chat))
        case "embeddings":
            guard let entries = keys["embeddings"]!.mapping(allowed: ["model", "inputs", "words_per_input"]) else { return nil }
            var embeddings = Workload.Embeddings()
            if let value = entries["model"]?.string() { embeddings.model = value }
            if let value = entries["inputs"]?.int(in: 1...100_000) { embeddings.inputs = value }
            if let value = entries["words_per_input"]?.int(in: 1...100_000) { embeddings.wordsPerInput = value }
            return WeightedWorkload(weight: weight, workload: .embeddings(embeddings))
        default:
            guard let entries = keys["infer"]!.mapping(allowed: ["model", "rows", "columns"]) else { return nil }
            var infer = Workload.Infer()
            if let value = entries["model"]?.string() { infer.model = value }
            if let value = entries["rows"]?.int(in: 1...1_000_000) { infer.rows = value }
            if let value = entries["columns"]?.int(in: 1...100_000) { infer.columns = value }
            return WeightedWorkload(weight: weight, workload: .infer(infer))
        }
    }

    private static func decodeTenant(_ node: NodeReader) -> LoadTenant? {
        guard let keys = node.mapping(allowed: ["name", "api_key", "weight"]) else { return nil }
        guard let name = keys["name"]?.string(), let key = keys["api_key"]?.string() else {
            if keys["name"] == nil || keys["api_key"] == nil { node.report("a tenant needs name and api_key") }
            return nil
        }
        return LoadTenant(name: name, apiKey: key, weight: keys["weight"]?.double(in: 0...1_000_000) ?? 1)
    }
}
