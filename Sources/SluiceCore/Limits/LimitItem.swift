/// One limit of a decision a `SharedLimitStore` makes: `cost` units against `perMinute` with
/// `burst` at once, kept under `key` (a negative cost, in a settlement, gives units back).
public struct LimitItem: Sendable, Equatable {
    public var key: String
    public var perMinute: Int
    public var burst: Int
    public var cost: Int

    public init(key: String, perMinute: Int, burst: Int, cost: Int) {
        self.key = key
        self.perMinute = perMinute
        self.burst = burst
        self.cost = cost
    }
}
