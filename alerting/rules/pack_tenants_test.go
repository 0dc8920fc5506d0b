package rules

// The tenant alerts' cases of TestDefaultPack.
func init() {
	packCases["SluiceTenantBandwidthNearPlan"] = struct{ bad, good string }{
		bad: "sluice_tenant_bytes_out_total{instance=\"b1\",tenant=\"a\"} 0+54000000x100\n" +
			"sluice_tenant_plan_fetch_bytes_per_second{instance=\"b1\",tenant=\"a\"} 1000000x100",
		good: "sluice_tenant_bytes_out_total{instance=\"b1\",tenant=\"a\"} 0+30000000x100\n" +
			"sluice_tenant_plan_fetch_bytes_per_second{instance=\"b1\",tenant=\"a\"} 1000000x100",
	}
	packCases["SluiceTenantDiskNearPlan"] = struct{ bad, good string }{
		bad:  "sluice_tenant_disk_bytes{instance=\"b1\",tenant=\"a\"} 450x100\nsluice_tenant_disk_bytes{instance=\"b2\",tenant=\"a\"} 400x100\nsluice_tenant_plan_disk_bytes{instance=\"b1\",tenant=\"a\"} 1000x100",
		good: "sluice_tenant_disk_bytes{instance=\"b1\",tenant=\"a\"} 450x100\nsluice_tenant_plan_disk_bytes{instance=\"b1\",tenant=\"a\"} 1000x100",
	}
	packCases["SluiceTenantThrottled"] = struct{ bad, good string }{
		bad:  `sluice_tenant_throttle_seconds_total{instance="b1",tenant="a"} 0+3x100`,
		good: `sluice_tenant_throttle_seconds_total{instance="b1",tenant="a"} 7x100`,
	}
	packCases["SluiceTenantOverDiskCapacity"] = struct{ bad, good string }{
		bad:  "sluice_tenant_disk_bytes{instance=\"b1\",tenant=\"a\"} 600x100\nsluice_tenant_disk_bytes{instance=\"b2\",tenant=\"a\"} 600x100\nsluice_tenant_plan_disk_bytes{instance=\"b1\",tenant=\"a\"} 1000x100",
		good: "sluice_tenant_disk_bytes{instance=\"b1\",tenant=\"a\"} 600x100\nsluice_tenant_plan_disk_bytes{instance=\"b1\",tenant=\"a\"} 1000x100",
	}
}
