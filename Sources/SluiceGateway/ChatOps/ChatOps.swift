import Foundation
import Logging
import NIOCore
import SluiceConfig
import SluiceCore

/// Slash commands on the admin listener (`POST /chat/command`), from Slack or Mattermost: who
/// asked is checked (`ChatSignature`), the command runs against the running gateway, the answer
/// is formatted for the chat, every command is recorded with who asked (`ChatAudit`), and a
/// command that changed something is announced on the incoming webhook (`ChatNotifier`).
final class ChatOps: Sendable {
    let gateway: Gateway
    private let secret: [UInt8]?
    private let token: [UInt8]?
    private let audit: ChatAudit
    let notifier: ChatNotifier?
    /// Seconds since 1970 (tests move it).
    private let clock: @Sendable () -> Int64

    init(
        gateway: Gateway, configuration: ChatOpsConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) {
        self.gateway = gateway
        let logger = gateway.runtime.logger
        func secret(_ name: String?) -> [UInt8]? {
            guard let name else { return nil }
            guard let value = environment[name], !value.isEmpty else {
                logger.warning("admin.chatops names \(name), but it is unset or empty: those commands are refused")
                return nil
            }
            return Array(value.utf8)
        }
        self.secret = secret(configuration.signingSecretEnv)
        self.token = secret(configuration.mattermostTokenEnv)
        self.audit = ChatAudit(path: configuration.auditLog, logger: logger)
        self.notifier = gateway.runtime.chatNotifier
        self.clock = clock
    }

    func handle(_ request: AdminRequest) -> AdminResponse {
        let body = request.body.map { Array($0.readableBytesView) } ?? []
        let source: String
        do throws(ChatSignature.Failure) {
            if let slack = request.headers.first(name: "x-slack-signature"), let secret {
                source = "slack"
                try ChatSignature.verifySlack(
                    secret: secret, timestamp: request.headers.first(name: "x-slack-request-timestamp"), signature: slack, body: body, now: clock())
            } else if let token, request.headers.first(name: "authorization")?.hasPrefix("Token ") ?? false {
                source = "mattermost"
                try ChatSignature.verifyMattermost(token: token, authorization: request.headers.first(name: "authorization"))
            } else {
                throw .unsigned
            }
        } catch {
            audit.refused(reason: "\(error)", peer: request.peer?.ipAddress)
            return .error(.unauthorized, "Refused: \(error).", code: "invalid_signature")
        }
        let form = Self.form(body)
        let user = form["user_name"] ?? form["user_id"] ?? "unknown"
        let text = form["text"] ?? ""
        let answer: String
        var announce = false
        switch ChatCommand.parse(text) {
        case .failure(let error):
            answer = "\(error)"
        case .success(let command):
            (answer, announce) = run(command, by: "\(source):\(user)")
        }
        audit.record(source: source, user: user, userID: form["user_id"], channel: form["channel_name"], command: text, answer: answer)
        if announce { notifier?.notify("\(user): \(answer)") }
        return .json(.ok, ["response_type": "in_channel", "text": answer])
    }

    /// The answer, and whether to announce it in the chat room (a drain; weight changes are
    /// announced by `ModelVersions`, whoever makes them).
    private func run(_ command: ChatCommand, by who: String) -> (String, Bool) {
        switch command {
        case .help:
            return ("Commands: " + ChatCommand.usage, false)
        case .status:
            return (ChatReport.status(gateway), false)
        case .scale:
            return (ChatReport.scale(gateway), false)
        case .drain(let replica, let pool), .undrain(let replica, let pool):
            let draining = if case .drain = command { true } else { false }
            return drain(replica, pool: pool, draining)
        case .canary(let model, let percent):
            return canary(model, percent: percent, by: who)
        case .limits(let tenant):
            return (ChatReport.limits(gateway, tenant: tenant), false)
        }
    }

    private func drain(_ text: String, pool name: String?, _ draining: Bool) -> (String, Bool) {
        guard let id = ConfigValues.hostPort(text) else { return ("\(text) is not a host:port", false) }
        let pools = gateway.runtime.pools.filter { pool in (name == nil || pool.name == name) && pool.snapshot.replica(id) != nil }
        guard let pool = pools.first else { return ("\(id) is not a replica of \(name.map { "pool \($0)" } ?? "any pool")", false) }
        guard pools.count == 1 else {
            return ("\(id) is in pools \(pools.map(\.name).joined(separator: ", ")); name one: drain \(id) <pool>", false)
        }
        pool.snapshot.replica(id)!.setDraining(draining)
        pool.gate?.dispatch(pool.snapshot)
        gateway.runtime.logger.notice(draining ? "replica drained" : "replica undrained", metadata: ["pool": "\(pool.name)", "replica": "\(id)"])
        return (draining ? "Draining \(id) in \(pool.name): out of rotation, requests in flight finish." : "\(id) is back in rotation in \(pool.name).", true)
    }

    private func canary(_ name: String, percent: Double, by who: String) -> (String, Bool) {
        let versions = gateway.runtime.versions
        guard let index = versions.models.firstIndex(where: { $0.configuration.names.contains(name) }) else {
            return ("no versioned model is named \(name)", false)
        }
        let model = versions.models[index].configuration
        guard let weights = ChatCommand.canaryWeights(versions.weights(of: index), percent: percent) else {
            return ("\(model.name) has one version: there is no canary to weigh", false)
        }
        do throws(ModelVersions.ChangeError) {
            let changes = Dictionary(uniqueKeysWithValues: zip(model.versions.map(\.pool), weights))
            let set = try versions.setWeights(model: model.name, changes, by: who)
            let shares = zip(model.versions, set).map { "\($0.pool) \(ModelVersions.format(($1 * 10).rounded() / 10))%" }
            return ("Canary for \(model.name): " + shares.joined(separator: ", ") + ".", false)
        } catch {
            return ("\(error)", false)
        }
    }

    /// `application/x-www-form-urlencoded` fields (Slack and Mattermost send commands so).
    static func form(_ body: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text)
            }
            fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }
}
