// Command gen writes, for every case of ../cases.json, the layer tar that containerd's
// change writer (and so BuildKit) produces for that list of entries: Go's archive/tar with
// Format set to PAX, modification times clamped to the case's epoch and cut to whole seconds,
// access and change times cleared, empty user and group names, xattrs as SCHILY.xattr. records,
// hard links as links to the first name, whiteouts as empty regular files dated 1970.
//
// Run it from the gotar directory: go run ./gen
// The output goes to expected/<case>.tar; kiln's tests compare their own bytes with these.
package main

import (
	"archive/tar"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

type entry struct {
	Path   string            `json:"path"`
	Type   string            `json:"type"`
	Mode   int64             `json:"mode"`
	UID    int               `json:"uid"`
	GID    int               `json:"gid"`
	Mtime  [2]int64          `json:"mtime"`
	Data   string            `json:"content"`
	Target string            `json:"target"`
	Major  int64             `json:"major"`
	Minor  int64             `json:"minor"`
	Xattrs map[string]string `json:"xattrs"`
}

type testCase struct {
	Name    string  `json:"name"`
	Epoch   *int64  `json:"epoch"`
	Entries []entry `json:"entries"`
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func main() {
	raw, err := os.ReadFile("cases.json")
	must(err)
	var cases []testCase
	must(json.Unmarshal(raw, &cases))
	must(os.MkdirAll("expected", 0o755))
	for _, c := range cases {
		f, err := os.Create(filepath.Join("expected", c.Name+".tar"))
		must(err)
		tw := tar.NewWriter(f)
		byPath := map[string]entry{}
		for _, e := range c.Entries {
			if e.Type == "whiteout" {
				must(tw.WriteHeader(&tar.Header{
					Typeflag: tar.TypeReg,
					Name:     e.Path,
					ModTime:  time.Unix(0, 0).UTC(),
				}))
				continue
			}
			src := e
			if e.Type == "hardlink" {
				src = byPath[e.Target]
			}
			byPath[e.Path] = src
			mt := time.Unix(src.Mtime[0], src.Mtime[1])
			if c.Epoch != nil && mt.After(time.Unix(*c.Epoch, 0)) {
				mt = time.Unix(*c.Epoch, 0)
			}
			hdr := &tar.Header{
				Name:    e.Path,
				Mode:    src.Mode,
				Uid:     src.UID,
				Gid:     src.GID,
				ModTime: mt.Truncate(time.Second),
				Format:  tar.FormatPAX,
			}
			switch e.Type {
			case "dir":
				hdr.Typeflag = tar.TypeDir
				hdr.Name += "/"
			case "file":
				hdr.Typeflag = tar.TypeReg
				hdr.Size = int64(len(e.Data))
			case "symlink":
				hdr.Typeflag = tar.TypeSymlink
				hdr.Linkname = e.Target
			case "hardlink":
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = e.Target
			case "char", "block":
				hdr.Typeflag = tar.TypeChar
				if e.Type == "block" {
					hdr.Typeflag = tar.TypeBlock
				}
				hdr.Devmajor = e.Major
				hdr.Devminor = e.Minor
			case "fifo":
				hdr.Typeflag = tar.TypeFifo
			default:
				panic("unknown type " + e.Type)
			}
			if len(src.Xattrs) > 0 {
				hdr.PAXRecords = map[string]string{}
				for k, v := range src.Xattrs {
					b, err := hex.DecodeString(v)
					must(err)
					hdr.PAXRecords["SCHILY.xattr."+k] = string(b)
				}
			}
			must(tw.WriteHeader(hdr))
			if hdr.Typeflag == tar.TypeReg {
				_, err := tw.Write([]byte(e.Data))
				must(err)
			}
		}
		must(tw.Close())
		must(f.Close())
	}
}
