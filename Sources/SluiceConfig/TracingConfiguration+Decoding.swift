extension TracingConfiguration {
    /// `tracing: { endpoint, sample, service_name, export_delay }`.
    static func decode(_ reader: NodeReader) -> TracingConfiguration? {
        guard let keys = reader.mapping(allowed: ["endpoint", "sample", "service_name", "export_delay"]) else { return nil }
        guard let endpointNode = keys["endpoint"] else {
            reader.report("missing required key \"endpoint\" (the collector's OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces)")
            return nil
        }
        guard let endpoint = endpointNode.string() else { return nil }
        guard endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") else {
            endpointNode.report("\"\(endpoint)\" is not an http:// or https:// URL")
            return nil
        }
        var tracing = TracingConfiguration(endpoint: endpoint)
        if let node = keys["sample"], let share = node.double(in: 0...1) { tracing.sample = share }
        if let node = keys["service_name"], let name = node.string() {
            if name.isEmpty { node.report("an empty service name") } else { tracing.serviceName = name }
        }
        if let node = keys["export_delay"], let delay = node.duration(atLeast: .milliseconds(1)) { tracing.exportDelay = delay }
        return tracing
    }
}
