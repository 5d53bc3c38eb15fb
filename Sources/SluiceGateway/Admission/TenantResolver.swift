import Foundation
import SluiceConfig
import SluiceCore
import SluiceHTTP1

/// Who is asking: the tenant whose API key a request carries (`Authorization: Bearer <key>`, or
/// the configured `limits.tenant_header`), else `default`. Keys are read once at start (from the
/// environment or a file) and kept only as keyed hashes (SipHash with a per-process key), and a
/// request's key is hashed where it lies in the head's bytes: no string is made of it, and no
/// key is held in memory in the clear.
struct TenantResolver: Sendable {
    private let keyIndex: [UInt64: Int]
    private let hasher: SipHash
    private let header: String?
    /// The index `tenant(for:)` returns for a request no key names: the configured tenants' count.
    let defaultIndex: Int

    /// Reads each tenant's keys now: a file that cannot be read, or a key two tenants share,
    /// stops the start with its name (`Admission.StartError`); an unset variable leaves the tenant without keys and is
    /// passed to `warn`.
    init(_ configuration: LimitsConfiguration, environment: [String: String], hasher: SipHash, warn: (String) -> Void) throws {
        self.hasher = hasher
        self.header = configuration.tenantHeader
        var index: [UInt64: Int] = [:]
        for (position, tenant) in configuration.tenants.enumerated() {
            for key in try Self.keys(of: tenant, environment: environment, warn: warn) {
                let hash = hasher.hash(Array(key.utf8))
                if let other = index[hash], other != position {
                    throw Admission.StartError(description: "tenants \(configuration.tenants[other].name) and \(tenant.name) share an API key")
                }
                index[hash] = position
            }
        }
        self.keyIndex = index
        self.defaultIndex = configuration.tenants.count
    }

    private static func keys(of tenant: TenantConfiguration, environment: [String: String], warn: (String) -> Void) throws -> [String] {
        var keys: [String] = []
        if let name = tenant.keysEnv {
            if let value = environment[name], !value.isEmpty {
                keys += value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            } else {
                warn("tenant \(tenant.name): keys_env \(name) is unset or empty, so no key names this tenant")
            }
        }
        if let path = tenant.keysFile {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw Admission.StartError(description: "tenant \(tenant.name): cannot read keys_file \(path): \(error.localizedDescription)")
            }
            keys += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        return keys.filter { !$0.isEmpty }
    }

    private static let bearer = Array("bearer ".utf8)

    /// The tenant a request belongs to: its key's, or `defaultIndex`.
    func tenant(for head: HTTP1Head) -> Int {
        let field: HTTP1Head.Field?
        if let header {
            field = head.fields.first { field in
                head.bytes.withUnsafeReadableBytes { HTTP1Bytes.equalsLowercase($0[field.name], runtimeName: header) }
            }
        } else {
            field = head.first("authorization")
        }
        guard let field else { return defaultIndex }
        let hash: UInt64? = head.bytes.withUnsafeReadableBytes { raw in
            var value = raw[field.value]
            if header == nil {
                // `Bearer <key>`, the scheme matched ignoring case.
                let scheme = Self.bearer
                guard value.count > scheme.count,
                      zip(value.prefix(scheme.count), scheme).allSatisfy({ $0 | 0x20 == $1 })
                else { return nil }
                value = value.dropFirst(scheme.count)
            }
            while let first = value.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { value = value.dropFirst() }
            return hasher.hash(value)
        }
        return hash.flatMap { keyIndex[$0] } ?? defaultIndex
    }
}
