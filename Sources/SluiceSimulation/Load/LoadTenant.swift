/// A client identity: its API key goes in `Authorization: Bearer`.
public struct LoadTenant: Sendable, Equatable {
    public var name: String
    public var apiKey: String
    public var weight: Double

    public init(name: String, apiKey: String, weight: Double = 1) {
        self.name = name
        self.apiKey = apiKey
        self.weight = weight
    }
}
