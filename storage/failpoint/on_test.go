//go:build failpoints

package failpoint

import "testing"

func TestHitEvery(t *testing.T) {
	restore, err := Set(StorageCommit, "every(3)")
	if err != nil {
		t.Fatal(err)
	}
	defer restore()
	var fired []int
	for i := 1; i <= 9; i++ {
		if Hit(StorageCommit, 0) {
			fired = append(fired, i)
		}
	}
	if len(fired) != 3 || fired[0] != 3 || fired[2] != 9 {
		t.Fatalf("every(3) fired on hits %v, want 3, 6, 9", fired)
	}
	if !Hit(StorageCommit, 12) || Hit(StorageCommit, 13) {
		t.Fatal("an indexed hit must fire exactly on multiples of N")
	}
	if Hit(DeliverDrop, 0) {
		t.Fatal("an unarmed point fired")
	}
	restore()
	if Hit(StorageCommit, 3) {
		t.Fatal("fired after restore")
	}
}
