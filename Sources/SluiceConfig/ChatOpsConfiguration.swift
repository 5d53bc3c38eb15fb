/// `admin.chatops`: who may send commands (secrets named by environment variable, never in the
/// file), where notices go, and where every command is recorded.
public struct ChatOpsConfiguration: Sendable, Equatable {
    /// Slack's signing secret (requests signed with HMAC-SHA256).
    public var signingSecretEnv: String?
    /// Mattermost's slash-command token.
    public var mattermostTokenEnv: String?
    /// An incoming webhook (Slack or Mattermost) for notices: scale decisions, ejections, canary changes.
    public var webhookURL: String?
    /// A file every command is appended to (JSON lines), besides the log.
    public var auditLog: String?

    public init() {}
}
