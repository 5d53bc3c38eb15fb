import Foundation
import NIOCore
import NIOHTTP1
import SluiceConfig
import SluiceCore

struct AdminRequest {
    var method: HTTPMethod
    var uri: String
    var headers: HTTPHeaders
    var body: ByteBuffer?
    var peer: SocketAddress?

    var path: Substring {
        uri.firstIndex(of: "?").map { uri[..<$0] } ?? uri[...]
    }
}

struct AdminResponse {
    var status: HTTPResponseStatus
    var contentType: String
    var body: ByteBuffer
    var extraHeaders: [(String, String)] = []

    static func json(_ status: HTTPResponseStatus, _ value: some Encodable) -> AdminResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return AdminResponse(status: status, contentType: "application/json", body: ByteBuffer(bytes: data))
    }

    static func error(_ status: HTTPResponseStatus, _ message: String, code: String) -> AdminResponse {
        let error = GatewayError(status: status, message: message, type: "invalid_request_error", code: code)
        return AdminResponse(status: status, contentType: "application/json", body: ByteBuffer(string: error.jsonBody()))
    }
}

/// The admin API's routes. `/healthz`, `/readyz` and `/metrics` are open (probes and Prometheus
/// must reach them); the status page (`/`) and `/admin/*` need the token, or, with no token configured, a loopback
/// client.
final class AdminRoutes: Sendable {
    let gateway: Gateway
    private let token: [UInt8]?
    /// Slash commands (`admin.chatops`), authorized by their own signatures, not the admin token.
    private let chatops: ChatOps?

    init(gateway: Gateway, token: String?) {
        self.gateway = gateway
        self.token = token.map { Array($0.utf8) }
        chatops = gateway.runtime.configuration.admin.chatops.map { ChatOps(gateway: gateway, configuration: $0, environment: gateway.environment) }
    }

    func handle(_ request: AdminRequest) -> AdminResponse {
        let path = request.path
        switch (request.method, path) {
        case (.GET, "/healthz"), (.HEAD, "/healthz"):
            return .json(.ok, ["status": "ok"])
        case (.GET, "/readyz"), (.HEAD, "/readyz"):
            return readiness()
        case (.GET, "/metrics"):
            return AdminResponse(
                status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                body: ByteBuffer(string: MetricsExport.render(gateway)))
        case (.POST, "/chat/command"):
            guard let chatops else { return .error(.notFound, "Chat commands are not configured (admin.chatops).", code: "not_found") }
            return chatops.handle(request)
        default:
            break
        }
        guard Self.needsToken(path) else {
            return .error(.notFound, "No admin route \(path).", code: "not_found")
        }
        if let denied = authorize(request) { return denied }
        switch (request.method, path) {
        case (.GET, "/"):
            return AdminResponse(
                status: .ok, contentType: "text/html; charset=utf-8", body: ByteBuffer(string: StatusPage.render(StatusView(gateway: gateway))),
                extraHeaders: [("cache-control", "no-store")])
        case (.GET, "/admin/status"):
            return .json(.ok, StatusView(gateway: gateway))
        case (.GET, "/admin/pools"):
            return .json(.ok, PoolsView(gateway: gateway))
        case (.GET, "/admin/scale"):
            return AdminResponse(status: .ok, contentType: "application/json", body: ByteBuffer(string: ScaleView.document(gateway)))
        case (.POST, "/admin/reload"):
            return reload()
        case (.GET, "/admin/versions"):
            return .json(.ok, VersionsView(gateway.runtime.versions))
        default:
            break
        }
        // /admin/pools/{pool}/replicas[/{host:port}[/drain]]
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.count >= 5, parts[1] == "admin", parts[2] == "pools", parts[4] == "replicas" {
            return membership(request, pool: parts[3], rest: Array(parts.dropFirst(5)))
        }
        // /admin/versions/{model}
        if parts.count == 4, parts[1] == "admin", parts[2] == "versions", request.method == .PUT || request.method == .POST {
            return setWeights(request, model: parts[3].removingPercentEncoding ?? parts[3])
        }
        return .error(.notFound, "No admin route \(request.method) \(path).", code: "not_found")
    }

    private func reload() -> AdminResponse {
        do {
            let outcome = try gateway.reload()
            return .json(.ok, ReloadView(outcome: outcome))
        } catch .noSource {
            return .error(.conflict, "\(Gateway.ReloadError.noSource).", code: "reload_unavailable")
        } catch {
            return .error(.badRequest, "Reload refused; the running configuration is unchanged. \(error)", code: "reload_rejected")
        }
    }

    private func membership(_ request: AdminRequest, pool: String, rest: [String]) -> AdminResponse {
        guard let runtime = gateway.pool(named: pool) else {
            return .error(.notFound, "No pool named \(pool).", code: "unknown_pool")
        }
        func replicaID(_ text: String) -> ReplicaID? {
            ConfigValues.hostPort(text.removingPercentEncoding ?? text)
        }
        do throws(Gateway.MembershipError) {
            switch (request.method, rest.count) {
            case (.POST, 0):
                struct Body: Decodable { var replica: String }
                guard let body = request.body.flatMap({ try? JSONDecoder().decode(Body.self, from: Data($0.readableBytesView)) }) else {
                    return .error(.badRequest, #"Send a JSON body {"replica": "host:port"}."#, code: "invalid_body")
                }
                guard let id = replicaID(body.replica) else {
                    return .error(.badRequest, "\(body.replica) is not a host:port.", code: "invalid_replica")
                }
                try gateway.addReplica(id, toPool: pool)
                return .json(.created, MembershipView(pool: runtime))
            case (.DELETE, 1):
                guard let id = replicaID(rest[0]) else {
                    return .error(.badRequest, "\(rest[0]) is not a host:port.", code: "invalid_replica")
                }
                try gateway.removeReplica(id, fromPool: pool)
                return .json(.ok, MembershipView(pool: runtime))
            case (.POST, 2) where rest[1] == "drain", (.DELETE, 2) where rest[1] == "drain":
                guard let id = replicaID(rest[0]), let replica = runtime.snapshot.replica(id) else {
                    return .error(.notFound, "\(rest[0]) is not a replica of pool \(pool).", code: "not_a_member")
                }
                // Draining takes the replica out of rotation; requests in flight finish.
                replica.setDraining(request.method == .POST)
                // Back in rotation: its free slots go to waiting requests.
                runtime.gate?.dispatch(runtime.snapshot)
                return .json(.ok, MembershipView(pool: runtime))
            default:
                return .error(.notFound, "No admin route \(request.method) \(request.path).", code: "not_found")
            }
        } catch {
            switch error {
            case .noSuchPool(let name):
                return .error(.notFound, "No pool named \(name).", code: "unknown_pool")
            case .alreadyMember(let id):
                return .error(.conflict, "\(id) is already a replica of pool \(pool).", code: "already_a_member")
            case .notMember(let id):
                return .error(.notFound, "\(id) is not a replica of pool \(pool).", code: "not_a_member")
            }
        }
    }

    /// `{"weights": {"<pool>": <weight>, ...}}`: the named versions' new weights, the others unchanged.
    private func setWeights(_ request: AdminRequest, model: String) -> AdminResponse {
        struct Body: Decodable { var weights: [String: Double] }
        guard let body = request.body.flatMap({ try? JSONDecoder().decode(Body.self, from: Data($0.readableBytesView)) }), !body.weights.isEmpty else {
            return .error(.badRequest, #"Send a JSON body {"weights": {"<pool>": <weight>}}."#, code: "invalid_body")
        }
        do throws(ModelVersions.ChangeError) {
            try gateway.runtime.versions.setWeights(model: model, body.weights, by: "admin API from \(request.peer?.ipAddress ?? "?")")
            return .json(.ok, VersionsView(gateway.runtime.versions))
        } catch {
            switch error {
            case .unknownModel: return .error(.notFound, "\(error).", code: "unknown_model")
            case .unknownVersion: return .error(.notFound, "\(error).", code: "unknown_version")
            case .badWeights: return .error(.badRequest, "\(error).", code: "invalid_weights")
            }
        }
    }

    private func readiness() -> AdminResponse {
        let view = ReadinessView(gateway: gateway)
        return .json(view.ready ? .ok : .serviceUnavailable, view)
    }

    /// The answer to a request its head already refuses (an `/admin/*` path without the token),
    /// so its body is never read; nil when the request may go on.
    func refusal(method: HTTPMethod, uri: String, headers: HTTPHeaders, peer: SocketAddress?) -> AdminResponse? {
        let request = AdminRequest(method: method, uri: uri, headers: headers, body: nil, peer: peer)
        guard Self.needsToken(request.path) else { return nil }
        return authorize(request)
    }

    /// The status page and `/admin/*` need the token; probes, metrics and chat commands do not.
    static func needsToken(_ path: Substring) -> Bool {
        path == "/" || path.hasPrefix("/admin/")
    }

    private func authorize(_ request: AdminRequest) -> AdminResponse? {
        guard let token else {
            if request.peer.map(Self.isLoopback) == true { return nil }
            return .error(
                .forbidden, "No admin token is configured, so the status page and /admin/* answer loopback clients only.",
                code: "admin_loopback_only")
        }
        if let presented = request.headers.first(name: "authorization").flatMap(Self.presentedToken),
            Self.constantTimeEqual(presented, token)
        {
            return nil
        }
        var response = AdminResponse.error(.unauthorized, "A valid admin token is required for the status page and /admin/*.", code: "unauthorized")
        // A browser asks its user for Basic credentials (the token as the password) and then
        // sends them with the page's own polls; API clients send the token as a bearer.
        response.extraHeaders.append(
            ("www-authenticate", request.path == "/" ? "Basic realm=\"sluice-admin\", charset=\"UTF-8\"" : "Bearer realm=\"sluice-admin\""))
        return response
    }

    /// The token in `Authorization: Bearer <token>`, or the password of `Basic` credentials
    /// (any user name).
    static func presentedToken(_ value: String) -> [UInt8]? {
        let lowered = value.lowercased()
        if lowered.hasPrefix("bearer "), value.utf8.count > 7 {
            return Array(value.utf8.dropFirst(7))
        }
        guard lowered.hasPrefix("basic "),
            let decoded = Data(base64Encoded: String(value.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
        else { return nil }
        return Array(decoded[decoded.index(after: colon)...])
    }

    /// Compares in time that depends only on the lengths, so the token cannot be guessed byte by byte.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        let length = max(a.count, b.count)
        for index in 0..<length {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0 && a.count == b.count
    }

    static func isLoopback(_ address: SocketAddress) -> Bool {
        guard let ip = address.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }
}
