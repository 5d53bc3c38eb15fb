import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Requests to a gateway's admin listener, each with a deadline: what the load harness needs to
/// sample the gateway and to act on its scale decisions. Answers are read whole, in any framing
/// (the admin API may stream or chunk them).
public struct AdminClient: Sendable {
    public let host: String
    public let port: Int
    /// Sent as `Authorization: Bearer` on `/admin/*` calls.
    public let token: String?
    /// `HTTPClient.shared` unless told otherwise: it lives as long as the process, so nothing
    /// here has to shut it down.
    let client: HTTPClient

    public init?(url: String, token: String? = nil, client: HTTPClient = .shared) {
        guard let (host, port) = LoadRunner.parseTarget(url) else { return nil }
        self.host = host
        self.port = port
        self.token = token
        self.client = client
    }

    public struct Response: Sendable {
        public var status: Int
        public var body: String
    }

    /// One request; nil when the gateway did not answer in full within `timeout`.
    public func request(_ method: String, _ path: String, body: String? = nil, timeout: TimeAmount = .seconds(1)) async -> Response? {
        var headers = HTTPHeaders()
        if let token { headers.add(name: "authorization", value: "Bearer \(token)") }
        if body != nil { headers.add(name: "content-type", value: "application/json") }
        guard let request = try? HTTPClient.Request(
            url: "http://\(host):\(port)\(path)", method: HTTPMethod(rawValue: method), headers: headers, body: body.map { .string($0) })
        else { return nil }
        // (The future's deadline covers the body too; the async `execute`'s ends at the head.)
        guard let response = try? await client.execute(request: request, deadline: .now() + timeout).get() else { return nil }
        return Response(status: Int(response.status.code), body: response.body.map { String(buffer: $0) } ?? "")
    }

    /// `request` whose body is a JSON object.
    public func json(_ method: String, _ path: String, body: String? = nil) async -> [String: Any]? {
        guard let response = await request(method, path, body: body), (200..<300).contains(response.status) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(response.body.utf8))) as? [String: Any]
    }
}
