import SluiceCore
import Yams

extension GatewayConfiguration {
    /// Parses and validates YAML text. Throws `ConfigError` listing every issue found.
    public static func decode(yaml: String) throws(ConfigError) -> GatewayConfiguration {
        let root = try composeYAML(yaml)
        let config = decodeRoot(root)
        if let config, root.diagnostics.issues.isEmpty {
            return config
        }
        throw ConfigError(issues: root.diagnostics.issues)
    }

    /// The parser's complaint on one line, without libyaml's caret drawing.
    static func yamlProblem(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ", ")
        default:
            return "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        }
    }

    static func yamlErrorLine(_ error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return nil
        }
    }

    private static func decodeRoot(_ root: NodeReader) -> GatewayConfiguration? {
        guard let keys = root.mapping(allowed: ["listen", "workers", "pin_workers", "log_level", "admin", "pools", "limits", "publish", "shutdown", "tls", "http2", "models", "tracing"]) else {
            return nil
        }
        guard let listenNode = keys["listen"] else {
            root.report("missing required key \"listen\"")
            return nil
        }
        let listen = listenNode.hostPort(allowZeroPort: true)
        let admin: AdminConfiguration?
        if let adminNode = keys["admin"] {
            admin = decodeAdmin(adminNode)
        } else {
            root.report("missing required key \"admin\"")
            admin = nil
        }
        var pools: [PoolConfiguration]? = nil
        var poolItems: [NodeReader] = []
        if let poolsNode = keys["pools"], let items = poolsNode.sequence() {
            poolItems = items
            if items.isEmpty { poolsNode.report("at least one pool is required") }
            let decoded = items.compactMap(decodePool)
            if decoded.count == items.count { pools = decoded }
            var seen: Set<String> = []
            for (item, pool) in zip(items, decoded) where !seen.insert(pool.name).inserted {
                item.report("duplicate pool name \"\(pool.name)\"")
            }
        } else if keys["pools"] == nil {
            root.report("missing required key \"pools\"")
        }
        guard let listen, let admin, let pools else { return nil }
        var config = GatewayConfiguration(listen: listen, admin: admin, pools: pools)
        if let node = keys["workers"], let value = node.int(in: 1...256) { config.workers = value }
        if let node = keys["pin_workers"], let value = node.bool() { config.pinWorkers = value }
        if let node = keys["log_level"], let value = node.oneOf(logLevels) { config.logLevel = value }
        if let node = keys["limits"] { config.limits = decodeLimits(node) }
        if let node = keys["publish"] { config.publish = PublishConfiguration.decode(node) }
        if let node = keys["tracing"] { config.tracing = TracingConfiguration.decode(node) }
        if let node = keys["tls"] { config.tls = decodeTLS(node) }
        if let node = keys["http2"] { config.http2 = decodeHTTP2(node) }
        if let node = keys["models"] { config.models = decodeModels(node, pools: pools) }
        checkOverflow(config, items: poolItems)
        if let node = keys["shutdown"], let entries = node.mapping(allowed: ["grace"]) {
            if let grace = entries["grace"]?.duration() { config.shutdownGrace = grace }
        }
        if listen.port != 0, listen == admin.listen, let node = keys["admin"] {
            node.child(key: "listen", node: node.node).report("the admin listener cannot share the data listener's address \(listen)")
        }
        return config
    }

    private static func decodeAdmin(_ reader: NodeReader) -> AdminConfiguration? {
        guard let keys = reader.mapping(allowed: ["listen", "token_env", "chatops"]) else { return nil }
        guard let listenNode = keys["listen"] else {
            reader.report("missing required key \"listen\"")
            return nil
        }
        guard let listen = listenNode.hostPort(allowZeroPort: true) else { return nil }
        var admin = AdminConfiguration(listen: listen)
        if let tokenNode = keys["token_env"], let name = tokenNode.string() {
            if name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) {
                tokenNode.report("\"\(name)\" is not an environment variable name")
            } else {
                admin.tokenEnv = name
            }
        }
        if let node = keys["chatops"] { admin.chatops = decodeChatOps(node) }
        return admin
    }

    private static func decodeChatOps(_ reader: NodeReader) -> ChatOpsConfiguration? {
        guard let keys = reader.mapping(allowed: ["signing_secret_env", "mattermost_token_env", "webhook_url", "audit_log"]) else { return nil }
        var chatops = ChatOpsConfiguration()
        for (key, assign) in [("signing_secret_env", \ChatOpsConfiguration.signingSecretEnv), ("mattermost_token_env", \.mattermostTokenEnv)] {
            guard let node = keys[key], let name = node.string() else { continue }
            if name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) {
                node.report("\"\(name)\" is not an environment variable name")
            } else {
                chatops[keyPath: assign] = name
            }
        }
        if keys["signing_secret_env"] == nil, keys["mattermost_token_env"] == nil {
            reader.report("chatops needs signing_secret_env (Slack) or mattermost_token_env (Mattermost): who may send commands")
        }
        if let node = keys["webhook_url"], let url = node.string() {
            if url.hasPrefix("http://") || url.hasPrefix("https://") { chatops.webhookURL = url } else { node.report("\"\(url)\" is not an http(s) URL") }
        }
        if let node = keys["audit_log"], let path = node.string() {
            if path.isEmpty { node.report("an empty path") } else { chatops.auditLog = path }
        }
        return chatops
    }

    private static func decodeLimits(_ reader: NodeReader) -> LimitsConfiguration {
        var limits = LimitsConfiguration()
        guard let keys = reader.mapping(allowed: [
            "max_header_bytes", "max_body_bytes", "max_inspect_bytes", "client_timeout", "keepalive_timeout", "max_connections", "body_timeout", "min_body_rate",
            "backend", "on_backend_failure", "backend_timeout", "instances", "default_max_tokens", "shadow", "tenant_header", "tenants", "default",
        ]) else { return limits }
        if let node = keys["backend"], let value = node.string(), value != "local" {
            if value.hasPrefix("redis://"), let address = ConfigValues.hostPort(String(value.dropFirst("redis://".count))) {
                limits.backend = .redis(address)
            } else {
                node.report("backend \"\(value)\": must be local or redis://host:port")
            }
        }
        if let value = keys["backend_timeout"]?.duration(atLeast: .microseconds(100)) { limits.backendTimeout = value }
        if let value = keys["instances"]?.int(in: 1...10_000) { limits.instances = value }
        if let value = keys["default_max_tokens"]?.int(in: 1...10_000_000) { limits.defaultMaxTokens = value }
        if let node = keys["on_backend_failure"], let value = node.string() {
            if let mode = BackendFailureMode(rawValue: value) {
                limits.onBackendFailure = mode
            } else {
                node.report("must be one of \(BackendFailureMode.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(value)\"")
            }
        }
        if let value = keys["shadow"]?.bool() { limits.shadow = value }
        if let node = keys["tenant_header"], let value = node.string() {
            if value.isEmpty || value.contains(where: { $0 == " " || $0 == ":" }) {
                node.report("\"\(value)\" is not a header name")
            } else {
                limits.tenantHeader = value.lowercased()
            }
        }
        if let node = keys["default"] { limits.defaultTenant = decodeTenantLimits(node, extra: []).map(\.limits) }
        if let node = keys["tenants"], let items = node.sequence() {
            var seen: Set<String> = ["default"]
            for item in items {
                guard let (tenantLimits, entries) = decodeTenantLimits(item, extra: ["name", "keys_env", "keys_file"]) else { continue }
                guard let name = entries["name"]?.string(), !name.isEmpty else {
                    if entries["name"] == nil { item.report("a tenant needs a name") }
                    continue
                }
                guard seen.insert(name).inserted else {
                    item.report(name == "default" ? "\"default\" is the tenant of unknown keys; set its limits under limits.default" : "duplicate tenant name \"\(name)\"")
                    continue
                }
                let keysEnv = entries["keys_env"]?.string()
                let keysFile = entries["keys_file"]?.string()
                if keysEnv == nil, keysFile == nil {
                    item.report("tenant \"\(name)\" needs keys_env or keys_file (API keys never sit in this file)")
                }
                limits.tenants.append(TenantConfiguration(name: name, keysEnv: keysEnv, keysFile: keysFile, limits: tenantLimits))
            }
        }
        if let value = keys["max_header_bytes"]?.byteSize(in: 1_024...(1 << 20)) { limits.maxHeaderBytes = value }
        if let value = keys["max_body_bytes"]?.byteSize(in: 0...(1 << 40)) { limits.maxBodyBytes = value }
        if let value = keys["max_inspect_bytes"]?.byteSize(in: 1_024...(64 << 20)) { limits.maxInspectBytes = value }
        if let value = keys["client_timeout"]?.duration(atLeast: .milliseconds(1)) { limits.clientTimeout = value }
        if let value = keys["keepalive_timeout"]?.duration(atLeast: .milliseconds(1)) { limits.keepaliveTimeout = value }
        if let value = keys["max_connections"]?.int(in: 1...10_000_000) { limits.maxConnections = value }
        if let value = keys["body_timeout"]?.duration(atLeast: .seconds(1)) { limits.bodyTimeout = value }
        if let value = keys["min_body_rate"]?.byteSize(in: 0...(1 << 30)) { limits.minBodyRate = value }
        return limits
    }

    /// One tenant's limits (and the entries, for the caller's extra keys).
    private static func decodeTenantLimits(_ reader: NodeReader, extra: [String]) -> (limits: TenantLimits, entries: [String: NodeReader])? {
        let known = ["requests_per_minute", "burst", "max_concurrent", "priority", "tokens_per_minute", "token_burst", "models"]
        guard let entries = reader.mapping(allowed: known + extra) else { return nil }
        var limits = TenantLimits()
        limits.requestsPerMinute = entries["requests_per_minute"]?.int(in: 1...100_000_000)
        limits.burst = entries["burst"]?.int(in: 1...100_000_000)
        limits.maxConcurrent = entries["max_concurrent"]?.int(in: 1...10_000_000)
        if let value = entries["priority"]?.int(in: -1_000_000...1_000_000) { limits.priority = value }
        limits.tokensPerMinute = entries["tokens_per_minute"]?.int(in: 1...1_000_000_000_000)
        limits.tokenBurst = entries["token_burst"]?.int(in: 1...1_000_000_000_000)
        if limits.burst != nil, limits.requestsPerMinute == nil, let node = entries["burst"] {
            node.report("burst needs requests_per_minute")
        }
        if limits.tokenBurst != nil, limits.tokensPerMinute == nil, let node = entries["token_burst"] {
            node.report("token_burst needs tokens_per_minute")
        }
        if let node = entries["models"], let items = node.sequence() {
            var seen: Set<String> = []
            for item in items {
                guard let fields = item.mapping(allowed: ["model", "requests_per_minute", "burst", "tokens_per_minute", "token_burst"]) else { continue }
                guard let name = fields["model"]?.string(), !name.isEmpty else {
                    if fields["model"] == nil { item.report("a model limit needs model: the name requests carry in their model field") }
                    continue
                }
                guard seen.insert(name).inserted else {
                    item.report("duplicate model \"\(name)\"")
                    continue
                }
                var model = ModelLimits(model: name)
                model.requestsPerMinute = fields["requests_per_minute"]?.int(in: 1...100_000_000)
                model.burst = fields["burst"]?.int(in: 1...100_000_000)
                model.tokensPerMinute = fields["tokens_per_minute"]?.int(in: 1...1_000_000_000_000)
                model.tokenBurst = fields["token_burst"]?.int(in: 1...1_000_000_000_000)
                if model.requestsPerMinute == nil, model.tokensPerMinute == nil {
                    item.report("model \"\(name)\" sets no limit (requests_per_minute, tokens_per_minute)")
                }
                if model.burst != nil, model.requestsPerMinute == nil, let node = fields["burst"] { node.report("burst needs requests_per_minute") }
                if model.tokenBurst != nil, model.tokensPerMinute == nil, let node = fields["token_burst"] { node.report("token_burst needs tokens_per_minute") }
                limits.models.append(model)
            }
        }
        return (limits, entries)
    }
}

/// The YAML tree of `yaml` as a reader at the root, or the parse error with its line.
func composeYAML(_ yaml: String) throws(ConfigError) -> NodeReader {
    let node: Node?
    do {
        node = try Yams.compose(yaml: yaml)
    } catch YamlError.duplicatedKeysInMapping(let duplicates, let context) {
        // Yams marks the first of the pair; the line a reader must fix is the repeat.
        let key = duplicates.first ?? ""
        let first = context.mark.line
        let again = repeatedKeyLine(key, column: context.mark.column, after: first, in: yaml)
        throw ConfigError(issues: [ConfigIssue(
            path: "", line: again ?? first,
            message: "duplicate key \"\(key)\" (first at line \(first)); YAML allows each key once per mapping")])
    } catch let error as YamlError {
        throw ConfigError(issues: [ConfigIssue(
            path: "", line: GatewayConfiguration.yamlErrorLine(error),
            message: "not valid YAML: \(GatewayConfiguration.yamlProblem(error))")])
    } catch {
        throw ConfigError(issues: [ConfigIssue(path: "", line: nil, message: "not valid YAML: \(error)")])
    }
    guard let node else {
        throw ConfigError(issues: [ConfigIssue(path: "", line: nil, message: "the file is empty")])
    }
    return NodeReader(node: node, path: "", diagnostics: Diagnostics())
}

/// The line (from 1) after `line` where `key` is written again at `column` (from 1) as a block
/// mapping key, if any: where a duplicate key's second occurrence is.
func repeatedKeyLine(_ key: String, column: Int, after line: Int, in yaml: String) -> Int? {
    let indent = String(repeating: " ", count: max(0, column - 1))
    for (index, text) in yaml.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where index + 1 > line {
        guard text.hasPrefix(indent) else { continue }
        let rest = text.dropFirst(indent.count)
        for spelling in [key, "\"\(key)\"", "'\(key)'"] where rest.hasPrefix(spelling) {
            if rest.dropFirst(spelling.count).drop(while: { $0 == " " }).first == ":" { return index + 1 }
        }
    }
    return nil
}

extension GatewayConfiguration {
    /// `models:`; each version's pool must exist, and no name may route to two models.
    static func decodeModels(_ reader: NodeReader, pools: [PoolConfiguration]) -> [ModelConfiguration] {
        guard let items = reader.sequence() else { return [] }
        let poolNames = Set(pools.map(\.name))
        var models: [ModelConfiguration] = []
        var claimed: Set<String> = []
        for item in items {
            guard let keys = item.mapping(allowed: ["name", "aliases", "versions", "sticky", "shadow"]) else { continue }
            guard let name = keys["name"]?.string(), !name.isEmpty else {
                if keys["name"] == nil { item.report("a model needs name: the model field requests carry") }
                continue
            }
            var versions: [ModelConfiguration.Version] = []
            if let node = keys["versions"], let entries = node.sequence() {
                if entries.isEmpty { node.report("list at least one version") }
                var seen: Set<String> = []
                for entry in entries {
                    guard let fields = entry.mapping(allowed: ["pool", "weight"]) else { continue }
                    guard let pool = fields["pool"]?.string() else {
                        if fields["pool"] == nil { entry.report("a version needs pool: the name of the pool that serves it") }
                        continue
                    }
                    if !poolNames.contains(pool) {
                        fields["pool"]!.report("no pool is named \"\(pool)\" (pools: \(pools.map(\.name).joined(separator: ", ")))")
                    } else if !seen.insert(pool).inserted {
                        fields["pool"]!.report("pool \"\(pool)\" is already a version of \(name)")
                    }
                    let weight = fields["weight"].map { $0.double(in: 0...1_000_000) } ?? 1
                    if let weight { versions.append(.init(pool: pool, weight: weight)) }
                }
                if !versions.isEmpty, VersionSplit(weights: versions.map(\.weight)) == nil {
                    node.report("the weights of \(name)'s versions add up to zero")
                }
            } else if keys["versions"] == nil {
                item.report("model \"\(name)\" needs versions: the pools that serve it, with weights")
            }
            var model = ModelConfiguration(name: name, versions: versions)
            if let node = keys["aliases"], let aliases = node.strings() {
                if aliases.contains(where: \.isEmpty) { node.report("an alias cannot be empty") }
                model.aliases = aliases.filter { !$0.isEmpty }
            }
            if let node = keys["sticky"] { model.sticky = decodeKeySources(node) }
            if let node = keys["shadow"] { model.shadow = decodeShadow(node, model: model, poolNames: poolNames) }
            for taken in model.names where !claimed.insert(taken).inserted {
                item.report("\"\(taken)\" already names another model or alias")
            }
            models.append(model)
        }
        return models
    }

    /// `models[].shadow`: a pool that is not one of the model's versions.
    private static func decodeShadow(_ node: NodeReader, model: ModelConfiguration, poolNames: Set<String>) -> ModelConfiguration.Shadow? {
        guard let keys = node.mapping(allowed: ["pool", "share", "max_in_flight", "timeout"]) else { return nil }
        guard let pool = keys["pool"]?.string(), let share = keys["share"]?.double(in: 0...1) else {
            for key in ["pool", "share"] where keys[key] == nil { node.report("missing required key \"\(key)\"") }
            return nil
        }
        if !poolNames.contains(pool) {
            keys["pool"]!.report("no pool is named \"\(pool)\"")
        } else if model.versions.contains(where: { $0.pool == pool }) {
            keys["pool"]!.report("pool \"\(pool)\" is a version of \(model.name): a shadow gets copies, not a share")
        }
        var shadow = ModelConfiguration.Shadow(pool: pool, share: share)
        if let value = keys["max_in_flight"]?.int(in: 1...100_000) { shadow.maxInFlight = value }
        if let value = keys["timeout"]?.duration(atLeast: .milliseconds(1)) { shadow.timeout = value }
        return shadow
    }

    /// A list of key sources (`routing.key`, `models[].sticky`): header:<name>, tenant, body:user, prefix.
    static func decodeKeySources(_ node: NodeReader) -> [RoutingKeySource] {
        guard let items = node.sequence() else { return [] }
        var sources: [RoutingKeySource] = []
        for item in items {
            guard let text = item.string() else { continue }
            if text.hasPrefix("header:"), text.count > "header:".count {
                sources.append(.header(String(text.dropFirst("header:".count)).lowercased()))
            } else if text == "tenant" {
                sources.append(.tenant)
            } else if text == "body:user" {
                sources.append(.bodyUser)
            } else if text == "prefix" {
                sources.append(.prefix)
            } else {
                item.report("\"\(text)\" is not a key source (header:<name>, tenant, body:user, prefix)")
            }
        }
        if items.isEmpty { node.report("list at least one key source, or leave it out") }
        return sources
    }
}

extension GatewayConfiguration {
    /// `pools[].overflow` names a pool with a `provider`, and tenants that exist.
    static func checkOverflow(_ config: GatewayConfiguration, items: [NodeReader]) {
        let tenants = Set(config.limits.tenants.map(\.name) + ["default"])
        for (pool, item) in zip(config.pools, items) {
            guard let overflow = pool.overflow else { continue }
            let at = item.child(key: "overflow", node: item.node.mapping?["overflow"] ?? item.node)
            if let target = config.pools.first(where: { $0.name == overflow.pool }) {
                if target.provider == nil { at.report("pool \"\(overflow.pool)\" has no provider: overflow goes to a hosted provider's pool") }
                if target.name == pool.name { at.report("a pool cannot overflow into itself") }
            } else {
                at.report("no pool is named \"\(overflow.pool)\"")
            }
            for tenant in overflow.tenants where !tenants.contains(tenant) {
                at.report("no tenant is named \"\(tenant)\" (limits.tenants, or default)")
            }
        }
    }
}
