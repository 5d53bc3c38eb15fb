/// Requests waiting for a replica slot when every replica of a pool is at its concurrency: the
/// bounded queue of issue 5, as pure logic (the gateway drives it with its clock).
///
/// - **Bounded**: `enqueue` refuses past `capacity`, so an overloaded gateway answers 503 at once
///   instead of holding memory and clients (shedding).
/// - **Priority first**: a higher `priority` is always served before a lower one.
/// - **Fair within a priority**, by `Fairness`: with `.requests`, tenants take turns, one request
///   each per turn (round-robin), so a tenant that floods the queue delays its own requests, not
///   everyone's. With `.tokens`, the tenant served the fewest tokens so far goes next (virtual
///   token counters, as VTC in Sheng et al., "Fairness in Serving Large Language Models", OSDI
///   2024): a tenant whose requests are ten times longer gets a tenth of the turns, so tenants
///   share a saturated pool by the work done for them. Within a tenant, first come, first served.
/// - **Deadlines**: every entry carries one; `expire(now:)` takes out those past it (the caller
///   answers 503, or 504 if already sent upstream) and `nextDeadline` says when to look again.
public struct FairQueue<Element> {
    public typealias Ticket = UInt64

    fileprivate struct Entry {
        var ticket: Ticket
        var element: Element
        var deadline: UInt64
        /// Tokens it is expected to cost (`.tokens` fairness), charged when it is served.
        var cost: Int
    }

    public typealias Fairness = QueueFairness

    /// One priority level: each tenant's FIFO, and the order in which tenants take turns.
    fileprivate struct Level {
        var queues: [Int: [Entry]] = [:]
        var heads: [Int: Int] = [:]
        var turns: [Int] = []
        var turn = 0

        var isEmpty: Bool { turns.isEmpty }
    }

    public let capacity: Int
    public let fairness: Fairness
    public private(set) var count = 0
    /// Tokens served to each tenant (`.tokens`): charged as requests are served, corrected when
    /// their real usage is known, and lifted when a tenant starts waiting (below).
    public private(set) var served: [Int: Double] = [:]
    private var levels: [Int: Level] = [:]
    /// Priorities with entries, highest first.
    private var priorities: [Int] = []
    private var nextTicket: Ticket = 1
    /// Where each ticket waits, for `remove` and `expire`.
    private var locations: [Ticket: (priority: Int, tenant: Int)] = [:]
    /// Each tenant's recent demand (`noteArrival`): the tokens its requests are expected to cost,
    /// decaying by half every `halfLife`, and when it was last updated.
    private var recent: [Int: (tokens: Double, at: UInt64)] = [:]
    /// How fast `recent` forgets, in nanoseconds.
    public static var halfLife: UInt64 { 1_000_000_000 }

    public init(capacity: Int, fairness: Fairness = .requests) {
        precondition(capacity >= 0)
        self.capacity = capacity
        self.fairness = fairness
    }

    public var isEmpty: Bool { count == 0 }
    public var isFull: Bool { count >= capacity }

    /// Queues `element`; nil (nothing queued) when the queue is full.
    ///
    /// With `.tokens`, a tenant that starts waiting (none of its requests waited at this priority)
    /// has its count lifted to the lowest count of those waiting, so time spent idle is not
    /// banked as credit to flood with later (VTC's rule).
    public mutating func enqueue(_ element: Element, tenant: Int, priority: Int, deadline: UInt64, cost: Int = 1) -> Ticket? {
        guard count < capacity else { return nil }
        let ticket = nextTicket
        nextTicket += 1
        if levels[priority] == nil {
            levels[priority] = Level()
            priorities.append(priority)
            priorities.sort(by: >)
        }
        if levels[priority]!.queues[tenant] == nil {
            if fairness == .tokens {
                let counts = served
                if let lowest = levels[priority]!.turns.map({ counts[$0] ?? 0 }).min() {
                    served[tenant] = max(served[tenant] ?? 0, lowest)
                }
            }
            levels[priority]!.queues[tenant] = []
            levels[priority]!.heads[tenant] = 0
            levels[priority]!.turns.append(tenant)
        }
        levels[priority]!.queues[tenant]!.append(Entry(ticket: ticket, element: element, deadline: deadline, cost: cost))
        locations[ticket] = (priority, tenant)
        count += 1
        return ticket
    }

    /// The next element to serve: from the highest priority, the tenant whose turn it is (with
    /// `.tokens`, the one served the fewest tokens; ties in turn order). Its cost is charged.
    public mutating func dequeue() -> Element? {
        dequeue { _ in true }
    }

    /// As `dequeue()`, among the tenants `allowed` admits at the highest priority; nil when it
    /// admits none of them (the slot is kept, see `PoolGate`'s headroom).
    public mutating func dequeue(where allowed: (Int) -> Bool) -> Element? {
        guard let priority = priorities.first else { return nil }
        var level = levels[priority]!
        if level.turn >= level.turns.count { level.turn = 0 }
        var chosen: Int?
        for step in 0..<level.turns.count {
            let candidate = (level.turn + step) % level.turns.count
            guard allowed(level.turns[candidate]) else { continue }
            guard let best = chosen else {
                chosen = candidate
                if fairness == .requests { break }
                continue
            }
            if served[level.turns[candidate]] ?? 0 < served[level.turns[best]] ?? 0 { chosen = candidate }
        }
        guard let chosen else { return nil }
        level.turn = chosen
        let tenant = level.turns[level.turn]
        let head = level.heads[tenant]!
        let entry = level.queues[tenant]![head]
        level.heads[tenant] = head + 1
        if head + 1 == level.queues[tenant]!.count {
            // The tenant has nothing left: it leaves the rotation (the next tenant is now at
            // the same position).
            level.queues[tenant] = nil
            level.heads[tenant] = nil
            level.turns.remove(at: level.turn)
        } else {
            if head + 1 > 32, (head + 1) * 2 > level.queues[tenant]!.count {
                // Served entries are dropped in bulk, so a tenant that never runs dry does not
                // grow its array without bound.
                level.queues[tenant]!.removeFirst(head + 1)
                level.heads[tenant] = 0
            }
            level.turn += 1
        }
        store(level, at: priority)
        locations[entry.ticket] = nil
        count -= 1
        if fairness == .tokens { charge(tenant: tenant, tokens: entry.cost) }
        return entry.element
    }

    /// `tenant` sent a request expected to cost `cost` tokens at `now` (waiting or not).
    public mutating func noteArrival(tenant: Int, now: UInt64, cost: Int) {
        recent[tenant] = (Self.decayed(recent[tenant], to: now) + Double(cost), max(now, recent[tenant]?.at ?? 0))
    }

    /// The tenant asking for the most tokens lately, when two or more have asked within
    /// `window` of `now` (nil otherwise: with one tenant active there is no one to keep room for).
    public func heaviest(now: UInt64, window: UInt64) -> Int? {
        var active = 0
        var heaviest: (tenant: Int, tokens: Double)?
        for (tenant, entry) in recent where entry.at > now || now - entry.at <= window {
            active += 1
            let tokens = Self.decayed(entry, to: now)
            if tokens > heaviest?.tokens ?? -1 { heaviest = (tenant, tokens) }
        }
        return active >= 2 ? heaviest?.tenant : nil
    }

    private static func decayed(_ entry: (tokens: Double, at: UInt64)?, to now: UInt64) -> Double {
        guard let entry else { return 0 }
        guard now > entry.at else { return entry.tokens }
        let halvings = Double(now - entry.at) / Double(halfLife)
        guard halvings < 64 else { return 0 }
        // 2^-x: whole halvings exactly, the fraction by its Taylor series (within 1%; no libm here).
        let whole = halvings.rounded(.down)
        let f = halvings - whole
        let fraction = 1 - f * (0.693_147 - f * (0.240_227 - f * 0.055_504))
        return entry.tokens * fraction / Double(UInt64(1) << UInt64(whole))
    }

    /// Adds `tokens` (negative: a correction) to what `tenant` has been served: a request that
    /// went straight to a slot, or one whose usage turned out other than its cost.
    public mutating func charge(tenant: Int, tokens: Int) {
        served[tenant] = max(0, (served[tenant] ?? 0) + Double(tokens))
    }

    /// Takes out a waiting entry (its client left); nil if it is no longer queued.
    @discardableResult
    public mutating func remove(_ ticket: Ticket) -> Element? {
        guard let (priority, tenant) = locations[ticket] else { return nil }
        var level = levels[priority]!
        let head = level.heads[tenant]!
        guard let index = level.queues[tenant]![head...].firstIndex(where: { $0.ticket == ticket }) else { return nil }
        let entry = level.queues[tenant]!.remove(at: index)
        if head == level.queues[tenant]!.count {
            level.queues[tenant] = nil
            level.heads[tenant] = nil
            if let position = level.turns.firstIndex(of: tenant) {
                level.turns.remove(at: position)
                if position < level.turn { level.turn -= 1 }
            }
        }
        store(level, at: priority)
        locations[ticket] = nil
        count -= 1
        return entry.element
    }

    /// Takes out every entry whose deadline is at or before `now`, earliest deadline first.
    public mutating func expire(now: UInt64) -> [Element] {
        var expired: [(deadline: UInt64, ticket: Ticket)] = []
        for level in levels.values {
            for (tenant, queue) in level.queues {
                for entry in queue[level.heads[tenant]!...] where entry.deadline <= now {
                    expired.append((entry.deadline, entry.ticket))
                }
            }
        }
        expired.sort { ($0.deadline, $0.ticket) < ($1.deadline, $1.ticket) }
        return expired.compactMap { remove($0.ticket) }
    }

    /// The earliest deadline of any waiting entry.
    public var nextDeadline: UInt64? {
        var earliest: UInt64?
        for level in levels.values {
            for (tenant, queue) in level.queues {
                for entry in queue[level.heads[tenant]!...] where earliest == nil || entry.deadline < earliest! {
                    earliest = entry.deadline
                }
            }
        }
        return earliest
    }

    private mutating func store(_ level: Level, at priority: Int) {
        if level.isEmpty {
            levels[priority] = nil
            priorities.removeAll { $0 == priority }
        } else {
            levels[priority] = level
        }
    }
}

extension FairQueue: Sendable where Element: Sendable {}
extension FairQueue.Entry: Sendable where Element: Sendable {}
extension FairQueue.Level: Sendable where Element: Sendable {}

/// How `FairQueue` shares a priority level among tenants: turns by request, or by tokens served.
public enum QueueFairness: String, Sendable, CaseIterable {
    case requests
    case tokens
}
