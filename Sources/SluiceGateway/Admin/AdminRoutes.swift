import Foundation
import NIOCore
import NIOHTTP1
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
/// must reach them); `/admin/*` needs the bearer token, or, with no token configured, a loopback
/// client.
final class AdminRoutes: Sendable {
    let gateway: Gateway
    private let token: [UInt8]?

    init(gateway: Gateway, token: String?) {
        self.gateway = gateway
        self.token = token.map { Array($0.utf8) }
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
        default:
            break
        }
        guard path.hasPrefix("/admin/") else {
            return .error(.notFound, "No admin route \(path).", code: "not_found")
        }
        if let denied = authorize(request) { return denied }
        switch (request.method, path) {
        case (.GET, "/admin/pools"):
            return .json(.ok, PoolsView(gateway: gateway))
        default:
            return .error(.notFound, "No admin route \(request.method) \(path).", code: "not_found")
        }
    }

    private func readiness() -> AdminResponse {
        let view = ReadinessView(gateway: gateway)
        return .json(view.ready ? .ok : .serviceUnavailable, view)
    }

    private func authorize(_ request: AdminRequest) -> AdminResponse? {
        guard let token else {
            if request.peer.map(Self.isLoopback) == true { return nil }
            return .error(.forbidden, "No admin token is configured, so /admin/* answers loopback clients only.", code: "admin_loopback_only")
        }
        let presented = request.headers.first(name: "authorization").flatMap { value -> [UInt8]? in
            let prefix = "Bearer "
            guard value.count > prefix.count, value.lowercased().hasPrefix("bearer ") else { return nil }
            return Array(value.utf8.dropFirst(prefix.utf8.count))
        }
        if let presented, Self.constantTimeEqual(presented, token) { return nil }
        var response = AdminResponse.error(.unauthorized, "A valid bearer token is required for /admin/*.", code: "unauthorized")
        response.extraHeaders.append(("www-authenticate", "Bearer realm=\"sluice-admin\""))
        return response
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
