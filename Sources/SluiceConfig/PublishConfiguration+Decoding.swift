import Foundation
import SluiceCore

extension PublishConfiguration {
    /// `publish: { webhook: { url, format, ca_file } }`. A `ca_file` is read here, so that
    /// `sluice check` and a reload refuse one that is missing or holds no certificate, rather
    /// than the first decision's delivery failing much later.
    static func decode(_ reader: NodeReader) -> PublishConfiguration {
        var publish = PublishConfiguration()
        guard let keys = reader.mapping(allowed: ["webhook"]), let node = keys["webhook"],
              let hook = node.mapping(allowed: ["url", "format", "ca_file"])
        else { return publish }
        var format = WebhookFormat.json
        if let formatNode = hook["format"], let text = formatNode.oneOf(WebhookFormat.allCases.map(\.rawValue)),
           let value = WebhookFormat(rawValue: text) {
            format = value
        }
        guard let urlNode = hook["url"] else {
            node.report("missing required key \"url\"")
            return publish
        }
        guard let url = urlNode.string(), var webhook = webhook(url, format: format, node: urlNode) else { return publish }
        if let caNode = hook["ca_file"], let path = caNode.string() {
            if !webhook.https {
                caNode.report("a CA file needs an https:// url")
            } else if certificateFile(path, node: caNode) {
                webhook.caFile = path
            }
        }
        publish.webhook = webhook
        return publish
    }

    /// `http://host[:port]/path` or `https://...`; the port defaults to the scheme's.
    private static func webhook(_ url: String, format: WebhookFormat, node: NodeReader) -> Webhook? {
        let https: Bool
        if url.hasPrefix("https://") {
            https = true
        } else if url.hasPrefix("http://") {
            https = false
        } else {
            node.report("\"\(url)\" is not an http:// or https:// URL")
            return nil
        }
        let rest = url.drop { $0 != "/" }.dropFirst(2)
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count)
        let defaultPort = https ? 443 : 80
        let bracketed = authority.hasPrefix("[") && authority.hasSuffix("]")
        let withPort = authority.contains(":") && !bracketed ? String(authority) : "\(authority):\(defaultPort)"
        guard let address = ConfigValues.hostPort(withPort) else {
            node.report("\"\(url)\" needs a host and, optionally, a port (e.g. http://127.0.0.1:7000/hook)")
            return nil
        }
        return Webhook(host: address.host, port: address.port, path: path.isEmpty ? "/" : String(path), format: format, https: https)
    }

    /// True when `path` is a readable file holding a PEM certificate; reports why not.
    private static func certificateFile(_ path: String, node: NodeReader) -> Bool {
        guard let data = FileManager.default.contents(atPath: path) else {
            node.report("cannot read \"\(path)\"")
            return false
        }
        guard String(decoding: data, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
            node.report("\"\(path)\" holds no PEM certificate")
            return false
        }
        return true
    }
}
