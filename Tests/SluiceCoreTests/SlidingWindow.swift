/// The most units that fall in any window of `length` starting at one of `events` (in time
/// order): what a rate limit's bound, rate × window + burst, is checked against.
func mostUnits(_ events: [(at: UInt64, units: Int)], within length: UInt64) -> Int {
    var most = 0
    var end = 0
    var units = 0
    for start in events.indices {
        while end < events.count, events[end].at < events[start].at + length {
            units += events[end].units
            end += 1
        }
        most = max(most, units)
        units -= events[start].units
    }
    return most
}
