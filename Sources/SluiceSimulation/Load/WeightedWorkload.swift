public struct WeightedWorkload: Sendable, Equatable {
    public var weight: Double
    public var workload: Workload

    public init(weight: Double, workload: Workload) {
        self.weight = weight
        self.workload = workload
    }
}
