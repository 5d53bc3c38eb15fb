import NIOCore
import SluiceCore
import SluiceHTTP1

/// Everything the gateway reads from a body held whole, read in one place: its pool (by `model`
/// when the path did not choose one), its routing key and prompt chain, its token cost when the
/// tenant's limits read bodies, and its batch membership. The completion facts are scanned once
/// (`JSONFieldScanner.completionFacts`, only if a reader needs them); a batch member is also
/// parsed as a tree, because merging needs its values.
struct BodyInspection {
    let pool: PoolRuntime
    let key: String?
    let prompt: PromptChain?
    /// The request asked for a stream (its first byte then marks the end of prefill).
    let streams: Bool
    /// What the request would use, when its tenant's limits read the body.
    let cost: RequestCost?
    /// The request as a member of one of its pool's batches; nil when it goes alone.
    let batchItem: Batcher.Item?
    /// Where a copy of it goes, when it is one of its model's shadowed share.
    let shadow: ShadowMirror?
    /// The model's own name, when the request named it by an alias: the replicas serve the
    /// name, and would refuse the alias.
    var modelRename: String?

    enum Outcome {
        case inspected(BodyInspection)
        /// The body is refused (malformed, no pool for its model, a malformed batch member).
        case answer(GatewayError)
    }

    /// Inspects `body`, and gives `exchange` the prompt chain its pool's policy will read.
    static func of(
        _ exchange: Exchange, head: HTTP1Head, body: ByteBuffer, runtime: GatewayRuntime, random: inout some RandomNumberGenerator
    ) -> Outcome {
        var scanned: Result<CompletionRequestFacts, JSONFieldScanner.Failure>?
        func facts() -> Result<CompletionRequestFacts, JSONFieldScanner.Failure> {
            if let scanned { return scanned }
            let result = body.withUnsafeReadableBytes { bytes in
                Result { () throws(JSONFieldScanner.Failure) -> CompletionRequestFacts in try JSONFieldScanner.completionFacts(in: bytes) }
            }
            scanned = result
            return result
        }

        let pool: PoolRuntime
        var shadow: ShadowMirror?
        var modelRename: String?
        if let index = exchange.keyPool {
            pool = runtime.pools[index]
        } else {
            let model: String?
            if exchange.isGRPC {
                model = GRPCRouting.model(path: exchange.path, body: body)
            } else {
                switch facts() {
                case .success(let found): model = found.model
                case .failure(let failure): return .answer(.badJSON(failure.description))
                }
            }
            switch runtime.routeTable.route(path: exchange.path[...], model: model) {
            case .pool(let index):
                pool = runtime.pools[index]
            case .versioned(let index):
                let sticky = runtime.versions.models[index].configuration.sticky
                let key = RoutingKeys.fromBody(body, facts: { try? facts().get() }, head: head, sources: sticky, prefixTokens: 256).key
                let chosen = runtime.versions.choose(model: index, key: key, random: &random)
                guard runtime.routeTable.admits(path: exchange.path[...], pool: chosen.pool) else {
                    return .answer(.noRoute(path: exchange.path, model: model ?? "(none)"))
                }
                pool = runtime.pools[chosen.pool]
                exchange.version = chosen.stats
                // (Its usage is read from the answer, to count the version's tokens.)
                exchange.usageMeter = UsageMeter(strip: false)
                shadow = chosen.shadow
                let name = runtime.versions.models[index].configuration.name
                if !exchange.isGRPC, let model, model != name { modelRename = name }
            case .needsModel, .noRoute:
                return .answer(.noRoute(path: exchange.path, model: model ?? "(none)"))
            }
        }

        let routing = pool.configuration.routing
        let (key, prompt, streams) = RoutingKeys.fromBody(
            body, facts: { try? facts().get() }, head: head, sources: routing.key, prefixTokens: routing.prefixTokens,
            followPrompt: routing.policy == .cacheAware)
        exchange.prompt = prompt
        exchange.promptStreams = streams

        var cost: RequestCost?
        // (gRPC calls are not chat completions: their tenants' request limits apply, token limits do not.)
        if !exchange.isGRPC, let tenant = exchange.tenant, let admission = runtime.admission, admission.needsBody(tenant), body.readableBytes > 0 {
            guard case .success(let found) = facts() else {
                return .answer(.badJSON("a token-limited request must be a JSON object"))
            }
            cost = RequestCost(found, defaultMaxTokens: runtime.limits.defaultMaxTokens)
        }

        var batchItem: Batcher.Item?
        if let batcher = pool.batcher, let kind = Batcher.kind(of: exchange.path), body.readableBytes > 0 {
            switch Batcher.membership(kind, body, maxValues: batcher.configuration.maxValues) {
            case .join(let item): batchItem = item
            // Malformed: answered on its own, before it could join anyone.
            case .refuse(let error): return .answer(error)
            case .alone: break
            }
        }
        return .inspected(BodyInspection(
            pool: pool, key: key, prompt: prompt, streams: streams, cost: cost, batchItem: batchItem, shadow: shadow, modelRename: modelRename))
    }
}
