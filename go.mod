module github.com/kapkan-io/kapkan

go 1.26.8

require (
	github.com/gopacket/gopacket v1.7.7 // indirect
	github.com/netsampler/goflow2/v2 v2.2.6 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
