import SluiceCore

/// `publish`: where scale decisions go when they change.
public struct PublishConfiguration: Sendable, Equatable {
    public enum WebhookFormat: String, Sendable, Equatable, CaseIterable {
        /// The decision as JSON (the same object `/admin/scale` shows for the pool).
        case json
        /// `{"text": "..."}`, which Slack and Mattermost incoming webhooks accept.
        case slack
    }

    public struct Webhook: Sendable, Equatable {
        /// `https://` rather than `http://`.
        public var https: Bool
        public var host: String
        public var port: Int
        public var path: String
        public var format: WebhookFormat
        /// `ca_file`: PEM certificates that the https receiver's certificate must chain to,
        /// instead of the system's roots: for a receiver inside the cluster, on a private CA.
        public var caFile: String?

        public init(host: String, port: Int, path: String, format: WebhookFormat, https: Bool = false, caFile: String? = nil) {
            self.https = https
            self.host = host
            self.port = port
            self.path = path
            self.format = format
            self.caFile = caFile
        }

        /// Where the decision is POSTed.
        public var url: String {
            "\(https ? "https" : "http")://\(ReplicaID(host: host, port: port))\(path)"
        }
    }

    public var webhook: Webhook?

    public init() {}
}
