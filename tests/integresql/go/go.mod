module fixture-broker/tests/integresql

go 1.21

require (
	github.com/allaboutapps/integresql-client-go v1.0.0
	github.com/lib/pq v1.3.0
)
