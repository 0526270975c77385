package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// noDefault lists the keys that have no default: a JSON null in one of them cannot mean "the
// default", so it is refused with the key's name. Every other key treats null as omitted.
var noDefault = map[string]bool{
	"vocab_size":          true,
	"hidden_size":         true,
	"num_hidden_layers":   true,
	"num_attention_heads": true,
	"intermediate_size":   true,
}

// dropNulls returns obj without its null-valued keys, so that every later step (which keys are
// present, hence which defaults apply) treats `"key": null` exactly as an omitted key, as
// Hugging Face's loaders do. It walks the Go type t the object decodes into: keys of embedded
// structs count as keys of the object, and an object-valued key whose field is a struct (or a
// pointer to one) is cleaned the same way, recursively, so fields and sections added later get the
// same treatment without code here. It refuses, naming the key: a key that matches a field only
// case-insensitively (encoding/json would accept it), null in a key that has no default, and null
// inside a list (a list element has no default to fall back on).
func dropNulls(obj map[string]json.RawMessage, t reflect.Type, prefix string) (map[string]json.RawMessage, error) {
	fields := jsonFields(t)
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]json.RawMessage, len(obj))
	for _, k := range keys {
		v := obj[k]
		ft, ok := fields[k]
		if !ok {
			return nil, fmt.Errorf("unknown key %q (keys are case-sensitive; did you mean %q?)", prefix+k, prefix+strings.ToLower(k))
		}
		if isNull(v) {
			if prefix == "" && noDefault[k] {
				return nil, fmt.Errorf("key %q is null, but it has no default: set it", prefix+k)
			}
			continue
		}
		cleaned, err := cleanValue(v, ft, prefix+k)
		if err != nil {
			return nil, err
		}
		out[k] = cleaned
	}
	return out, nil
}

// cleanValue refuses nulls inside lists and cleans nested objects that decode into structs.
func cleanValue(v json.RawMessage, t reflect.Type, key string) (json.RawMessage, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		var m map[string]json.RawMessage
		if json.Unmarshal(v, &m) != nil || m == nil {
			return v, nil // not an object: the strict decoder reports the type error
		}
		m, err := dropNulls(m, t, key+".")
		if err != nil {
			return nil, err
		}
		return json.Marshal(m)
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		if json.Unmarshal(v, &items) != nil {
			return v, nil
		}
		for i, it := range items {
			if isNull(it) {
				return nil, fmt.Errorf("key %q: element %d is null; a list holds no nulls", key, i)
			}
			c, err := cleanValue(it, t.Elem(), fmt.Sprintf("%s[%d]", key, i))
			if err != nil {
				return nil, err
			}
			items[i] = c
		}
		return json.Marshal(items)
	}
	return v, nil
}

func isNull(v json.RawMessage) bool { return strings.TrimSpace(string(v)) == "null" }

// jsonFields maps each JSON key of struct type t to its field's type, flattening embedded structs
// without a JSON name as encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" {
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			out[name] = f.Type
		}
	}
	walk(t)
	return out
}
