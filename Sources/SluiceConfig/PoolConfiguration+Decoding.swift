import SluiceCore

extension GatewayConfiguration {
    static func decodePool(_ reader: NodeReader) -> PoolConfiguration? {
        guard let keys = reader.mapping(allowed: ["name", "match", "replicas", "routing", "timeouts", "upstream", "health", "retry", "queue", "max_concurrent_per_replica", "scaling", "batching", "discovery", "provider", "overflow"]) else {
            return nil
        }
        var name: String?
        if let node = keys["name"], let value = node.string() {
            if value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }) {
                name = value
            } else {
                node.report("\"\(value)\" is not a pool name (letters, digits, - _ . only)")
            }
        } else if keys["name"] == nil {
            reader.report("missing required key \"name\"")
        }

        var paths: [PathPattern]?
        var models: [String]?
        if let matchNode = keys["match"], let match = matchNode.mapping(allowed: ["paths", "models"]) {
            if let pathsNode = match["paths"], let items = pathsNode.sequence() {
                if items.isEmpty { pathsNode.report("at least one path is required") }
                let parsed = items.compactMap { item -> PathPattern? in
                    guard let text = item.string() else { return nil }
                    guard let pattern = PathPattern(text) else {
                        item.report("\"\(text)\" is not a path pattern (start with /; a * may only end it, after a /)")
                        return nil
                    }
                    return pattern
                }
                if parsed.count == items.count { paths = parsed }
            } else if match["paths"] == nil {
                matchNode.report("missing required key \"paths\"")
            }
            if let modelsNode = match["models"], let list = modelsNode.strings() {
                if list.isEmpty { modelsNode.report("list at least one model, or \"*\" for any") }
                models = list
            }
        } else if keys["match"] == nil {
            reader.report("missing required key \"match\"")
        }

        var replicas: [ReplicaID]?
        if let replicasNode = keys["replicas"], let items = replicasNode.sequence() {
            let parsed = items.compactMap { $0.hostPort() }
            if parsed.count == items.count {
                replicas = parsed
                var seen: Set<ReplicaID> = []
                for (item, id) in zip(items, parsed) where !seen.insert(id).inserted {
                    item.report("duplicate replica \(id)")
                }
            }
        } else if keys["replicas"] == nil {
            if keys["discovery"] == nil { reader.report("missing required key \"replicas\" (or \"discovery\")") }
            replicas = []
        }

        guard let name, let paths, let replicas else { return nil }
        var pool = PoolConfiguration(name: name, paths: paths, models: models, replicas: replicas)
        if let node = keys["discovery"] { pool.discovery = decodeDiscovery(node) }

        if let node = keys["routing"] {
            pool.routing = decodeRouting(node)
        }
        if let node = keys["timeouts"], let timeouts = node.mapping(allowed: ["connect", "response_header", "idle"]) {
            if let value = timeouts["connect"]?.duration(atLeast: .milliseconds(1)) { pool.timeouts.connect = value }
            if let value = timeouts["response_header"]?.duration(atLeast: .milliseconds(1)) { pool.timeouts.responseHeader = value }
            if let value = timeouts["idle"]?.duration(atLeast: .milliseconds(1)) { pool.timeouts.idle = value }
        }
        if let node = keys["upstream"] { decodeUpstream(node, into: &pool.upstream) }
        if let node = keys["health"] { decodeHealth(node, into: &pool) }
        if let node = keys["retry"], let retry = node.mapping(allowed: ["attempts", "idempotent", "budget_percent", "min_retries", "backoff", "max_backoff"]) {
            if let value = retry["attempts"]?.int(in: 1...10) { pool.retry.attempts = value }
            if let value = retry["idempotent"]?.bool() { pool.retry.idempotent = value }
            if let value = retry["budget_percent"]?.int(in: 0...100) { pool.retry.budgetPercent = value }
            if let value = retry["min_retries"]?.int(in: 0...1_000_000) { pool.retry.minRetries = value }
            if let value = retry["backoff"]?.duration() { pool.retry.backoff = UInt64(value.nanoseconds) }
            if let value = retry["max_backoff"]?.duration() { pool.retry.maxBackoff = UInt64(value.nanoseconds) }
        }
        if let value = keys["max_concurrent_per_replica"]?.int(in: 1...1_000_000) { pool.maxConcurrentPerReplica = value }
        if let node = keys["scaling"] { pool.scaling = decodeScaling(node) }
        if let node = keys["provider"], let entries = node.mapping(allowed: ["api_key_env", "host", "price_per_million_tokens", "model"]) {
            if let name = entries["api_key_env"]?.string() {
                if name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) {
                    entries["api_key_env"]!.report("\"\(name)\" is not an environment variable name")
                }
                var provider = ProviderConfiguration(apiKeyEnv: name)
                provider.host = entries["host"]?.string()
                provider.pricePerMillionTokens = entries["price_per_million_tokens"]?.double(in: 0...1_000_000)
                if let node = entries["model"], let model = node.string() {
                    if model.isEmpty { node.report("an empty model name") } else { provider.model = model }
                }
                pool.provider = provider
            } else if entries["api_key_env"] == nil {
                node.report("a provider needs api_key_env: the variable holding its API key (keys never sit in this file)")
            }
            if pool.upstream.tls == nil { node.report("a hosted provider is reached over TLS: set upstream.tls (server_name, and ca_file if it is not a public CA)") }
        }
        if let node = keys["overflow"], let entries = node.mapping(allowed: ["pool", "when_waiting", "tenants"]) {
            if let target = entries["pool"]?.string(), let tenants = entries["tenants"]?.strings() {
                var overflow = OverflowConfiguration(pool: target, tenants: tenants)
                if let value = entries["when_waiting"]?.int(in: 0...1_000_000) { overflow.whenWaiting = value }
                if tenants.isEmpty { entries["tenants"]!.report("list the tenants allowed to overflow") }
                pool.overflow = overflow
            } else {
                for key in ["pool", "tenants"] where entries[key] == nil { node.report("missing required key \"\(key)\"") }
            }
        }
        if let node = keys["batching"], let batching = node.mapping(allowed: ["max_batch", "max_wait", "target_latency", "max_values"]) {
            var configuration = BatchingConfiguration()
            if let value = batching["max_batch"]?.int(in: 1...4_096) { configuration.maxBatch = value }
            if let value = batching["max_wait"]?.duration(atLeast: .microseconds(100)) { configuration.maxWait = value }
            if let value = batching["target_latency"]?.duration(atLeast: .milliseconds(1)) { configuration.targetLatency = value }
            if let value = batching["max_values"]?.int(in: 16...(1 << 24)) { configuration.maxValues = value }
            pool.batching = configuration
        }
        if let node = keys["queue"], let queue = node.mapping(allowed: ["max", "timeout", "fairness", "headroom"]) {
            if let value = queue["headroom"]?.int(in: 0...1_000_000) { pool.queue.headroom = value }
            if let value = queue["max"]?.int(in: 0...1_000_000) { pool.queue.max = value }
            if let value = queue["fairness"]?.oneOf(QueueFairness.allCases.map(\.rawValue)) { pool.queue.fairness = QueueFairness(rawValue: value)! }
            if let value = queue["timeout"]?.duration(atLeast: .milliseconds(1)) { pool.queue.timeout = value }
            if keys["max_concurrent_per_replica"] == nil, pool.scaling?.minReplicas != 0 {
                node.report("queue needs max_concurrent_per_replica (requests wait when every replica is at it) or scaling.min_replicas: 0 (they wait for the first replica)")
            }
        }
        // Active checks are HTTP/1.1 in cleartext: against a TLS or HTTP/2-only port every check
        // would fail, and a checked replica waits for its first pass, so the pool would never serve.
        if pool.healthCheck != nil, pool.upstream.wire != .http1 || pool.upstream.tls != nil, let node = keys["health"] {
            node.report("health.check sends HTTP/1.1 in cleartext, which replicas behind upstream protocol \(pool.upstream.wire.rawValue)\(pool.upstream.tls == nil ? "" : " with tls") do not answer; leave it out (outlier ejection still applies)")
        }
        return pool
    }

    /// `discovery`: one source (`dns: host:port` for A/AAAA records, `srv: name` for SRV records
    /// with their ports, `file: path` with a host:port a line), re-read every `interval`, asking
    /// `resolver` (host:port) instead of the system's name server.
    static func decodeDiscovery(_ node: NodeReader) -> DiscoveryConfiguration? {
        guard let keys = node.mapping(allowed: ["dns", "srv", "file", "interval", "resolver"]) else { return nil }
        var sources: [DiscoveryConfiguration.Source] = []
        if let item = keys["dns"], let text = item.string() {
            if let id = ConfigValues.hostPort(text), !id.host.isEmpty { sources.append(.dns(name: id.host, port: id.port)) } else { item.report("\"\(text)\" is not a name:port") }
        }
        if let item = keys["srv"], let text = item.string() {
            if !text.isEmpty, !text.contains(" ") { sources.append(.srv(name: text)) } else { item.report("\"\(text)\" is not a DNS name") }
        }
        if let item = keys["file"], let text = item.string() {
            if text.hasPrefix("/") { sources.append(.file(path: text)) } else { item.report("must be an absolute path") }
        }
        guard sources.count == 1 else {
            if sources.count > 1 { node.report("one of dns, srv or file") } else if keys["dns"] == nil && keys["srv"] == nil && keys["file"] == nil { node.report("needs dns, srv or file") }
            return nil
        }
        var discovery = DiscoveryConfiguration(source: sources[0])
        if let value = keys["interval"]?.duration(atLeast: .milliseconds(50)) { discovery.interval = value }
        if let item = keys["resolver"] { discovery.resolver = item.hostPort() }
        return discovery
    }

    /// `health`: passive ejection (`eject_after`, `eject_for`, growing to `max_eject_for`, at
    /// most `max_ejected_percent` out, an optional `failure_rate` per `outlier_interval`) and
    /// optional active `check`s.
    static func decodeHealth(_ node: NodeReader, into pool: inout PoolConfiguration) {
        guard let health = node.mapping(allowed: [
            "eject_after", "eject_for", "max_eject_for", "max_ejected_percent", "failure_rate", "failure_rate_min_requests",
            "outlier_interval", "check",
        ]) else { return }
        if let value = health["eject_after"]?.int(in: 1...1_000) { pool.ejection.consecutiveFailures = value }
        if let value = health["eject_for"]?.duration() { pool.ejection.duration = UInt64(value.nanoseconds) }
        if let value = health["max_eject_for"]?.duration() { pool.ejection.maxDuration = UInt64(value.nanoseconds) }
        if let value = health["max_ejected_percent"]?.int(in: 0...100) { pool.ejection.maxEjectedPercent = value }
        if let value = health["failure_rate"]?.double(in: 0...1) { pool.ejection.failureRate = value }
        if let value = health["failure_rate_min_requests"]?.int(in: 1...1_000_000) { pool.ejection.failureRateMinRequests = value }
        if let value = health["outlier_interval"]?.duration(atLeast: .milliseconds(100)) { pool.outlierInterval = value }
        guard let node = health["check"], let check = node.mapping(allowed: ["path", "interval", "timeout", "healthy_after", "unhealthy_after", "jitter"]) else { return }
        var policy = HealthCheckPolicy()
        if let value = check["path"]?.string() {
            if value.hasPrefix("/") { policy.path = value } else { check["path"]?.report("must start with /") }
        }
        if let value = check["interval"]?.duration(atLeast: .milliseconds(10)) { policy.interval = UInt64(value.nanoseconds) }
        if let value = check["timeout"]?.duration(atLeast: .milliseconds(1)) { policy.timeout = UInt64(value.nanoseconds) }
        if let value = check["healthy_after"]?.int(in: 1...100) { policy.healthyAfter = value }
        if let value = check["unhealthy_after"]?.int(in: 1...100) { policy.unhealthyAfter = value }
        if let value = check["jitter"]?.double(in: 0...1) { policy.jitter = value }
        if policy.timeout >= policy.interval {
            node.report("timeout must be shorter than interval (a check still waiting when the next is due)")
        }
        pool.healthCheck = policy
    }

    static func decodeScaling(_ node: NodeReader) -> ScalingConfiguration? {
        let allowed = [
            "signal", "target_p95", "min_replicas", "max_replicas", "stable_window", "panic_window", "panic_threshold",
            "tolerance", "scale_in_ratio", "scale_down_delay", "max_step_up", "tick", "shared",
        ]
        guard let keys = node.mapping(allowed: allowed) else { return nil }
        guard let targetNode = keys["target_p95"] else {
            node.report("missing required key \"target_p95\" (the p95 objective, e.g. 800ms)")
            return nil
        }
        guard let target = targetNode.duration(atLeast: .milliseconds(1)) else { return nil }
        var scaling = ScalingConfiguration(targetP95: target)
        if let signalNode = keys["signal"], let text = signalNode.oneOf(ScalingSignal.allCases.map(\.rawValue)),
           let signal = ScalingSignal(rawValue: text) {
            scaling.signal = signal
        }
        if let value = keys["min_replicas"]?.int(in: 0...10_000) { scaling.minReplicas = value }
        if let value = keys["max_replicas"]?.int(in: 1...10_000) { scaling.maxReplicas = value }
        if let value = keys["tick"]?.duration(atLeast: .milliseconds(10)) { scaling.tick = value }
        if let value = keys["stable_window"]?.duration(atLeast: .milliseconds(10)) { scaling.stableWindow = value }
        if let value = keys["panic_window"]?.duration(atLeast: .milliseconds(10)) { scaling.panicWindow = value }
        if let value = keys["panic_threshold"]?.double(in: 1...100) { scaling.panicThreshold = value }
        if let value = keys["tolerance"]?.double(in: 0...10) { scaling.tolerance = value }
        if let value = keys["scale_in_ratio"]?.double(in: 0...1) { scaling.scaleInRatio = value }
        if let value = keys["scale_down_delay"]?.duration() { scaling.scaleDownDelay = value }
        if let value = keys["max_step_up"]?.int(in: 1...10_000) { scaling.maxStepUp = value }
        if let sharedNode = keys["shared"], let value = sharedNode.string() {
            if value.hasPrefix("redis://"), let address = ConfigValues.hostPort(String(value.dropFirst("redis://".count))) {
                scaling.shared = address
            } else {
                sharedNode.report("\"\(value)\" must be redis://host:port")
            }
        }
        if scaling.minReplicas > scaling.maxReplicas, let minNode = keys["min_replicas"] {
            minNode.report("min_replicas \(scaling.minReplicas) is above max_replicas \(scaling.maxReplicas)")
        }
        if scaling.panicWindow > scaling.stableWindow, let panicNode = keys["panic_window"] {
            panicNode.report("the panic window (\(scaling.panicWindow)) must not be longer than the stable window (\(scaling.stableWindow))")
        }
        if scaling.panicWindow < scaling.tick {
            (keys["tick"] ?? keys["panic_window"] ?? node).report("tick (\(scaling.tick)) must not be longer than the panic window (\(scaling.panicWindow)): windows are made of ticks")
        }
        return scaling
    }

    static func decodeRouting(_ node: NodeReader) -> RoutingConfiguration {
        var routing = RoutingConfiguration()
        let allowed = [
            "policy", "key", "prefix_tokens", "load_factor", "max_queue", "scrape", "slots", "max_pending_prefill", "move_after",
            "match_threshold", "prompt_index_blocks", "shared", "placement",
        ]
        guard let keys = node.mapping(allowed: allowed) else { return routing }
        if let policyNode = keys["policy"],
           let text = policyNode.oneOf(RoutingPolicyName.allCases.map(\.rawValue)),
           let policy = RoutingPolicyName(rawValue: text) {
            routing.policy = policy
        }
        if let keyNode = keys["key"] { routing.key = decodeKeySources(keyNode) }
        if let value = keys["prefix_tokens"]?.int(in: 1...1_000_000) { routing.prefixTokens = value }
        if let value = keys["load_factor"]?.double(in: 1...100) { routing.loadFactor = value }
        if let value = keys["max_queue"]?.int(in: 0...1_000_000) { routing.maxQueue = value }
        if let value = keys["slots"]?.int(in: 1...1_000_000) { routing.slots = value }
        if let value = keys["max_pending_prefill"]?.byteSize(in: 1...(1 << 40)) { routing.maxPendingPrefill = value }
        if let value = keys["move_after"]?.duration() { routing.moveAfter = value }
        if let value = keys["match_threshold"]?.double(in: 0...1) { routing.matchThreshold = value }
        if let value = keys["prompt_index_blocks"]?.int(in: 1_024...(1 << 26)) { routing.promptIndexBlocks = value }
        if let node = keys["placement"], let text = node.oneOf(CachePlacement.allCases.map(\.rawValue)), let value = CachePlacement(rawValue: text) {
            routing.placement = value
        }
        if let sharedNode = keys["shared"], let value = sharedNode.string() {
            if value.hasPrefix("redis://"), let address = ConfigValues.hostPort(String(value.dropFirst("redis://".count))) {
                routing.shared = address
            } else {
                sharedNode.report("\"\(value)\" must be redis://host:port")
            }
        }
        if routing.policy != .cacheAware {
            for name in ["slots", "max_pending_prefill", "move_after", "match_threshold", "prompt_index_blocks", "shared", "placement"] where keys[name] != nil {
                keys[name]!.report("\(name) is used only by cache-aware")
            }
        }
        if let scrapeNode = keys["scrape"], let scrape = scrapeNode.mapping(allowed: ["path", "interval"]) {
            if let value = scrape["path"]?.string() {
                if value.hasPrefix("/") { routing.scrapePath = value } else { scrape["path"]!.report("a path starts with /") }
            }
            if let value = scrape["interval"]?.duration(atLeast: .milliseconds(10)) { routing.scrapeInterval = value }
        }
        switch routing.policy {
        case .roundRobin where keys["key"] != nil, .random where keys["key"] != nil, .leastQueue where keys["key"] != nil:
            keys["key"]!.report("key is used only by consistent-hash and cache-aware (\(routing.policy.rawValue) would read bodies for nothing)")
        case .consistentHash where keys["key"] == nil:
            node.report("consistent-hash needs key: a list of key sources (header:<name>, tenant, body:user, prefix)")
        case .cacheAware where routing.key.isEmpty:
            routing.key = [.prefix]  // its documented default: the prompt's prefix
        default:
            break
        }
        return routing
    }
}
