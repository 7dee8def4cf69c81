package ring_test

import (
	"fmt"
	"log"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/ring"
)

// Example_nop shows the smallest round trip: prepare a NOP, submit it,
// wait for its completion and consume it.
//
//	go test -run Example_nop ./gosrc/ring/
func Example_nop() {
	r, err := ring.New(ring.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	sqe := r.GetSQE() // nil only when the submission queue is full
	ring.PrepNop(sqe, 42)
	if _, err := r.Submit(); err != nil {
		log.Fatal(err)
	}
	cqe, err := r.WaitCQE(time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("user data %d, res %d\n", cqe.UserData, cqe.Res)
	r.CQESeen() // after the last read of cqe
	// Output: user data 42, res 0
}
