/// One request, ready to send.
public struct PlannedRequest: Sendable, Equatable {
    public var path: String
    public var headers: [(String, String)]
    public var body: String
    public var stream: Bool
    public var workload: String
    public var tenant: String?

    public static func == (a: PlannedRequest, b: PlannedRequest) -> Bool {
        a.path == b.path && a.body == b.body && a.stream == b.stream && a.workload == b.workload && a.tenant == b.tenant
            && a.headers.map { "\($0.0):\($0.1)" } == b.headers.map { "\($0.0):\($0.1)" }
    }
}
