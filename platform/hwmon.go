package platform

import (
	"bytes"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Sensor is one hardware monitoring reading.
type Sensor struct {
	Chip  string  // the chip's name (hwmon "name" file): coretemp, k10temp, nct6775, ...
	Dev   string  // the hwmon directory (hwmon3): chip names repeat, one per CPU package
	Label string  // tempN_label / fanN_label when the driver has one, else "temp1", "fan2"
	Value float64 // °C for temperatures, RPM for fans
	Max   float64 // temperatures: tempN_max in °C; 0 when the driver does not say
	Crit  float64 // temperatures: tempN_crit in °C; 0 when the driver does not say
}

// Hwmon holds the temperatures and fan speeds the hardware exposes. Nil
// slices mean the hardware exposes none: absent, which is not 0 °C.
type Hwmon struct {
	Temps []Sensor
	Fans  []Sensor
}

// ReadHwmon reads the hwmon class directory (Documentation/hwmon/sysfs-interface.rst):
// fsys is rooted at /sys/class/hwmon, whose entries hwmonN each hold a
// "name" and tempN_input (millidegrees Celsius) / fanN_input (RPM) files.
// Inputs that cannot be read (drivers answer EIO or ENODATA for absent
// sensors) or hold nonsense are left out.
func ReadHwmon(fsys fs.FS) (Hwmon, error) {
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return Hwmon{}, fmt.Errorf("hwmon: %w", err)
	}
	var h Hwmon
	for _, e := range ents {
		dev := e.Name()
		if !strings.HasPrefix(dev, "hwmon") {
			continue
		}
		files, err := fs.ReadDir(fsys, dev)
		if err != nil {
			continue
		}
		chip := dev
		if b, err := fs.ReadFile(fsys, dev+"/name"); err == nil {
			if n := strings.TrimSpace(string(b)); n != "" && len(n) <= 64 {
				chip = n
			}
		}
		for _, f := range files {
			name := f.Name()
			kind, index, ok := sensorInput(name)
			if !ok {
				continue
			}
			raw, err := readValue(fsys, dev+"/"+name)
			if err != nil {
				continue
			}
			s := Sensor{Chip: chip, Dev: dev, Label: kind + index}
			if b, err := fs.ReadFile(fsys, dev+"/"+kind+index+"_label"); err == nil {
				if l := strings.TrimSpace(string(b)); l != "" && len(l) <= 64 {
					s.Label = l
				}
			}
			switch kind {
			case "temp":
				s.Value = float64(raw) / 1000
				if s.Value < -273.15 || s.Value > 1000 {
					continue // a driver's error value, not a temperature
				}
				if v, err := readValue(fsys, dev+"/temp"+index+"_max"); err == nil {
					s.Max = float64(v) / 1000
				}
				if v, err := readValue(fsys, dev+"/temp"+index+"_crit"); err == nil {
					s.Crit = float64(v) / 1000
				}
				h.Temps = append(h.Temps, s)
			case "fan":
				if raw < 0 || raw > 1_000_000 {
					continue
				}
				s.Value = float64(raw)
				h.Fans = append(h.Fans, s)
			}
		}
	}
	for _, l := range [][]Sensor{h.Temps, h.Fans} {
		sort.Slice(l, func(i, j int) bool {
			if l[i].Dev != l[j].Dev {
				return devLess(l[i].Dev, l[j].Dev)
			}
			return l[i].Label < l[j].Label
		})
	}
	return h, nil
}

// sensorInput recognizes "temp3_input" and "fan1_input".
func sensorInput(name string) (kind, index string, ok bool) {
	base, found := strings.CutSuffix(name, "_input")
	if !found {
		return "", "", false
	}
	for _, k := range []string{"temp", "fan"} {
		if idx, ok := strings.CutPrefix(base, k); ok && idx != "" && len(idx) <= 3 {
			if _, err := strconv.ParseUint(idx, 10, 16); err == nil {
				return k, idx, true
			}
		}
	}
	return "", "", false
}

// devLess orders hwmon2 before hwmon10.
func devLess(a, b string) bool {
	na, ea := strconv.Atoi(strings.TrimPrefix(a, "hwmon"))
	nb, eb := strconv.Atoi(strings.TrimPrefix(b, "hwmon"))
	if ea != nil || eb != nil {
		return a < b
	}
	return na < nb
}

func readValue(fsys fs.FS, name string) (int64, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0, err
	}
	return ParseHwmonValue(b)
}

// ParseHwmonValue parses one sysfs value file: a decimal integer and a
// newline ("45000\n").
func ParseHwmonValue(b []byte) (int64, error) {
	s := bytes.TrimSpace(b)
	if len(s) == 0 || len(s) > 20 {
		return 0, fmt.Errorf("hwmon: bad value %q", truncate(b))
	}
	v, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("hwmon: bad value %q", truncate(b))
	}
	return v, nil
}
