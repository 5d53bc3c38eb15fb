import NIOCore
import SluiceCore
import SluiceHTTP1

/// Where a request read whole goes: its pool (chosen by path, or by the body's `model`) and the
/// routing key and prompt chain its pool's policy reads from the body, which is read once
/// (`Exchange.facts`) for all of them.
enum BodyRoute {
    case pool(PoolRuntime, key: String?)
    case answer(GatewayError)

    init(_ exchange: Exchange, head: HTTP1Head, body: ByteBuffer, runtime: GatewayRuntime) {
        let pool: PoolRuntime
        if let index = exchange.keyPool {
            pool = runtime.pools[index]
        } else {
            let model: String?
            switch exchange.facts(of: body) {
            case .success(let facts): model = facts.model
            case .failure(let failure):
                self = .answer(.badJSON(failure.description))
                return
            }
            guard case .pool(let index) = runtime.routeTable.route(path: exchange.path[...], model: model) else {
                self = .answer(.noRoute(path: exchange.path, model: model ?? "(none)"))
                return
            }
            pool = runtime.pools[index]
        }
        let routing = pool.configuration.routing
        let (key, prompt, streams) = RoutingKeys.fromBody(
            body, facts: { try? exchange.facts(of: body).get() }, head: head, sources: routing.key,
            prefixTokens: routing.prefixTokens, followPrompt: routing.policy == .cacheAware)
        exchange.prompt = prompt
        exchange.promptStreams = streams
        self = .pool(pool, key: key)
    }
}
