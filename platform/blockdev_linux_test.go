package platform

import (
	"os"
	"strconv"
	"testing"
)

// The root filesystem's device resolves to a whole device when it is on
// one; /proc (an anonymous device) adds nothing.
func TestBlockDevicesOf(t *testing.T) {
	devs, err := BlockDevicesOf([]string{"/proc", "/nonexistent-guardd-test"})
	if err != nil || len(devs) != 0 {
		t.Fatalf("BlockDevicesOf(/proc) = %v, %v; want none", devs, err)
	}
	devs, err = BlockDevicesOf([]string{"/", "/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) > 1 {
		t.Fatalf("the same path twice gave %d devices", len(devs))
	}
	for _, d := range devs {
		if _, err := os.Stat("/sys/dev/block/" + strconv.FormatUint(uint64(d.Major), 10) + ":" + strconv.FormatUint(uint64(d.Minor), 10) + "/partition"); err == nil {
			t.Errorf("%+v is a partition, want its disk", d)
		}
		t.Logf("/ is on %+v", d)
	}
}
